"""The main job: pretrain a ResNet, plug it, the ViT or a timm model into the VLA policy, compare in closed loop.

1. Pretrain ResNet (and the ViT) as classifiers on ``shapes``, the objects the VLA world draws.
2. Train one VLA policy per encoder and training seed on the same demonstrations with the same trunk, head,
   optimiser and step budget: the pretrained ResNet frozen and fine-tuned, the same ResNet from scratch, the ViT
   from scratch and pretrained, a timm model (with its weights when they are on disk).
3. Evaluate every policy at several points of its training on the same closed-loop episodes, beside the
   expert's ceiling and a random floor.
4. Report: per encoder its success with a bootstrap interval over seeds and episodes, paired verdicts between
   encoders, learning curves; report.md, report.json, PNGs and W&B tables under ``runs/lineage/<preset>/``.

    python -m bridge run lineage [--preset tiny|cpu|gpu] [--seeds 3 --seed 0] [--trainer.devices 2 ...]

Every stage is resumable (see recipes/stages.py): rerun the same command after an interruption. The budgets
and arms are in presets.py, the work of each stage in stages.py, the statistics in results.py, the report in
report.py; pool.py runs stages side by side (``--parallel``, the tiny preset's 2), one thread each.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt

from bridge.errors import BridgeError
from bridge.runs import FolderLock
from bridge.vla.worlds import get_world
from recipes import kit
from recipes.lineage.pool import stage_pool
from recipes.lineage.presets import LR, PRESETS, RESNET, TRUNK, arms, cached_timm_weights, vit
from recipes.lineage.report import curves_chart, log_report, report, success_chart
from recipes.lineage.results import comparisons, curve, report_json
from recipes.lineage.stages import demos, evaluate_baselines, evaluate_run, pretrain, train_policy
from recipes.stages import claim_folder, run_stage, write_json


def main(argv: list[str] | None = None) -> None:
    parser = kit.recipe_parser(
        "lineage",
        __doc__,
        epilog="Trainer settings pass through to every stage: --trainer.devices 2 --trainer.strategy ddp",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument(
        "--world", help="where the policies act (the preset's: reach), e.g. babyai:GoToRedBall: then every encoder "
        "starts from scratch, beside BabyAI's FiLM-CNN"
    )  # fmt: skip
    parser.add_argument("--out", default=None, help="default runs/lineage/<preset>[-<world>]")
    parser.add_argument("--seeds", type=PositiveInt, help="training runs per policy (the preset's: 3)")
    parser.add_argument("--seed", type=NonNegativeInt, default=0, help="first training seed (SEED ... SEED+SEEDS-1)")
    parser.add_argument("--curve-points", type=PositiveInt, help="closed-loop evaluations along training (4)")
    parser.add_argument("--arms", nargs="+", metavar="LABEL", help='policies to train, e.g. "ResNet scratch" (all)')
    parser.add_argument("--steps", type=PositiveInt, help="optimiser steps per policy")
    parser.add_argument("--episodes", type=PositiveInt, help="expert demonstrations")
    parser.add_argument("--pretrain-epochs", type=PositiveInt)
    parser.add_argument(
        "--shapes", type=PositiveInt, nargs=3, metavar=("TRAIN", "VAL", "TEST"), help="pretraining images"
    )
    parser.add_argument("--eval-episodes", type=PositiveInt, help="closed-loop episodes per evaluation seed")
    parser.add_argument("--eval-seeds", type=PositiveInt)
    parser.add_argument("--image-size", type=int, help="the world's frames (64 by default)")
    parser.add_argument("--batch-size", type=PositiveInt)
    parser.add_argument(
        "--parallel", type=PositiveInt, help="training runs side by side, one torch thread each (tiny: 2, else 1)"
    )
    parser.add_argument("--timm", help="the timm encoder, e.g. timm:resnet18 (weights used when in the HF cache)")
    parser.add_argument("--timm-weights", help="a weights file for the timm encoder")
    parser.add_argument("--vit-weights", help="timm ViT-Tiny weights: adds a 'ViT-Tiny timm weights' policy")
    parser.add_argument(
        "--vit-pretraining", action=argparse.BooleanOptionalAction, help="pretrain the ViT on shapes too"
    )
    args = kit.parse(parser, argv)
    if args.image_size is not None and (args.image_size < 16 or args.image_size % 8):
        parser.error(
            f"--image-size must be a multiple of 8 and at least 16 (the ViT cuts 8x8 patches), got {args.image_size}"
        )
    for flag, path in (("--timm-weights", args.timm_weights), ("--vit-weights", args.vit_weights)):
        if path is not None and not Path(path).is_file():
            parser.error(f"{flag} {path} is not a file")

    preset = PRESETS[args.preset]
    overrides = {
        "steps": args.steps, "episodes": args.episodes, "pretrain_epochs": args.pretrain_epochs,
        "shapes": tuple(args.shapes) if args.shapes else None, "eval_episodes": args.eval_episodes,
        "eval_seeds": args.eval_seeds, "image_size": args.image_size, "batch_size": args.batch_size,
        "timm": args.timm, "pretrain_vit": args.vit_pretraining, "seeds": args.seeds,
        "curve_points": args.curve_points, "arms": tuple(args.arms) if args.arms else None,
        "parallel": args.parallel, "world": args.world,
    }  # fmt: skip
    if args.world not in (None, preset.world) and not args.arms:
        overrides["arms"] = ()  # the preset's arms are its world's; another world compares all of its own
    preset = replace(preset, **{k: v for k, v in overrides.items() if v is not None})
    try:
        get_world(preset.world)
    except BridgeError as err:
        parser.error(f"--world: {err}")
    known = [arm.label for arm in arms(replace(preset, arms=()), args.vit_weights, None)]
    unknown = [label for label in preset.arms if label not in known]
    if unknown:
        parser.error(f"--arms: no policy {', '.join(map(repr, unknown))} here; choose from {', '.join(known)}")
    suffix = "" if args.world in (None, PRESETS[args.preset].world) else "-" + args.world.replace(":", "-").lower()
    out = Path(args.out or f"runs/lineage/{args.preset}{suffix}")
    claim_folder(out, "lineage")
    with FolderLock(out, "lineage"):  # a second run on the same --out is refused, not run twice
        group = f"lineage-{args.preset}"
        timm_weights = args.timm_weights or cached_timm_weights(preset.timm)
        started = time.perf_counter()
        seeds = list(range(args.seed, args.seed + preset.seeds))
        # Training runs side by side in single-threaded processes where the preset says so, unless the Trainer
        # spans processes itself (DDP: every rank must run every stage, in step).
        processes = preset.parallel if single_process(args.trainer_config) else 1

        with stage_pool(processes) as pool:
            # 1. Pretraining, once per seed: the ResNet, and the ViT when the preset asks for it (AdamW; the ViT
            #    wants a lower rate). Seed s's policies start from seed s's backbone, so pretraining's spread is
            #    counted too.
            shared = {"image_size": preset.image_size, "shapes": preset.shapes, "epochs": preset.pretrain_epochs,
                      "batch_size": preset.batch_size, "trainer": args.trainer_config}  # fmt: skip
            compared = arms(preset, args.vit_weights, timm_weights)
            backbones = {"pretrain-resnet": (RESNET, 2e-3)}
            if preset.pretrain_vit:
                backbones["pretrain-vit"] = (vit(preset.image_size, preset.vit_width), 1e-3)
            backbones = {stage: b for stage, b in backbones.items() if any(arm.weights == stage for arm in compared)}
            pretraining = {
                (stage, seed): pool.submit(
                    run_stage, out, f"{stage}-seed{seed}", {"model": model, "lr": lr, "seed": seed, **shared},
                    pretrain(model, preset, lr, seed, group, args.trainer),
                )
                for seed in seeds
                for stage, (model, lr) in backbones.items()
            }  # fmt: skip

            # 2. One policy per encoder and seed: same demonstrations, trunk, head, optimiser and steps. The
            #    demonstrations are collected here first, so that no two runs collect them at once.
            path = out / "demos"
            if kit.is_global_zero():
                demos(preset, path).prepare_data()
            recipe = {"world": preset.world, "image_size": preset.image_size, "episodes": preset.episodes,
                      "steps": preset.steps, "batch_size": preset.batch_size, "trunk": TRUNK, "lr": LR,
                      "curve_points": preset.curve_points, "trainer": args.trainer_config}  # fmt: skip
            training = {}
            for arm in sorted(compared, key=lambda a: a.weights in backbones):  # scratch runs fill the pool first
                for seed in seeds:
                    backbone = pretraining.get((arm.weights, seed))
                    weights = backbone.result()["checkpoint"] if backbone else arm.weights  # waits for it
                    folder = "policy-" + arm.label.lower().replace(" ", "-").replace(":", "-") + f"-seed{seed}"
                    config = {"arm": asdict(arm), "weights": weights, "seed": seed, **recipe}
                    work = train_policy(arm, preset, seed, path, weights, group, args.trainer)
                    training[arm.label, seed] = pool.submit(run_stage, out, folder, config, work)
            pretrained = {key: future.result() for key, future in pretraining.items()}
            trained = [(arm, seed, training[arm.label, seed].result()) for arm in compared for seed in seeds]
            if not kit.is_global_zero():
                return  # the other ranks are done: evaluation and the report are rank 0's, after every Trainer

            # 3. Every policy at every point of its learning curve, in closed loop on the same episodes, beside the
            #    expert and random actions.
            episodes = {"world": preset.world, "image_size": preset.image_size, "episodes": preset.eval_episodes,
                        "seeds": preset.eval_seeds}  # fmt: skip
            evaluations = [pool.submit(evaluate_run, preset, result, episodes) for _, _, result in trained]
            runs: dict[str, list[dict]] = {}
            for (arm, seed, result), points in zip(trained, evaluations):
                runs.setdefault(arm.label, []).append({"seed": seed, "train": result, "points": points.result()})
            baselines = run_stage(out, "baselines", episodes, evaluate_baselines(preset), cheap=True)

        # 4. Statistics (bootstrap intervals over seeds and episodes, paired verdicts) and the report.
        verdicts = comparisons(runs, preset.timm.removeprefix("timm:"))
        data = report_json(args.preset, asdict(preset), seeds, compared, runs, baselines, verdicts, processes)
        write_json(out / "report.json", data)
        text = report(args.preset, data, runs, baselines, pretrained)
        (out / "report.md").write_text(text)
        curves = {label: curve(r) for label, r in runs.items()}
        figures = {"success": success_chart(data, baselines, out / "success.png"),
                   "curves": curves_chart(curves, out / "curves.png")}  # fmt: skip
        log_report(out, group, data, runs, baselines, curves, figures)
        print(text)
        minutes = (time.perf_counter() - started) / 60
        print(f"report: {out / 'report.md'}, {out / 'report.json'}  figures: {figures['success']}, "
              f"{figures['curves']}  ({minutes:.1f} min)")  # fmt: skip


def single_process(trainer: dict) -> bool:
    """Whether every Trainer of these ``--trainer.*`` settings stays in this one process: no DDP over devices or
    nodes (``devices`` left to "auto" spans every GPU), and no launcher (torchrun) started this one as a rank."""
    devices = trainer.get("devices", "auto" if torch.cuda.device_count() > 1 else 1)
    spans = devices not in (1, "1") or trainer.get("num_nodes", 1) != 1 or "strategy" in trainer
    return not spans and "WORLD_SIZE" not in os.environ
