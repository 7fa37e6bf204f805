"""The main job: pretrain a ResNet, plug it, the ViT or a timm model into the VLA policy, compare in closed loop.

1. Pretrain ResNet (and the ViT) as classifiers on ``shapes``, the objects the VLA world draws.
2. Train one VLA policy per encoder on the same demonstrations with the same trunk, head, optimiser and
   step budget: the pretrained ResNet frozen and fine-tuned, the same ResNet from scratch, the ViT from
   scratch and pretrained, a timm model (with its weights when they are on disk).
3. Evaluate every policy on the same closed-loop episodes, beside the expert's ceiling and a random floor.
4. Report: a table (terminal, Markdown), a bar chart, a W&B table, under ``runs/lineage/<preset>/``.

    python -m bridge run lineage [--preset tiny|cpu|gpu] [--trainer.devices 2 --trainer.strategy ddp]

Every stage is resumable (see recipes/stages.py): rerun the same command after an interruption. The budgets
and arms are in presets.py, the work of each stage in stages.py, the report in report.py.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

from jsonargparse.typing import PositiveInt

from recipes import kit
from recipes.lineage.presets import LR, PRESETS, RESNET, TRUNK, arms, cached_timm_weights, vit
from recipes.lineage.report import log_report, report, success_chart
from recipes.lineage.stages import evaluate_baselines, evaluate_policy, pretrain, train_policy
from recipes.stages import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = kit.recipe_parser(
        "lineage",
        __doc__,
        epilog="Trainer settings pass through to every stage: --trainer.devices 2 --trainer.strategy ddp",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--out", default=None, help="default runs/lineage/<preset>")
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
        "timm": args.timm, "pretrain_vit": args.vit_pretraining,
    }  # fmt: skip
    preset = replace(preset, **{k: v for k, v in overrides.items() if v is not None})
    out = Path(args.out or f"runs/lineage/{args.preset}")
    group = f"lineage-{args.preset}"
    timm_weights = args.timm_weights or cached_timm_weights(preset.timm)
    started = time.perf_counter()

    # 1. Pretraining: the ResNet, and the ViT when the preset asks for it (AdamW; the ViT wants a lower rate).
    shared = {"image_size": preset.image_size, "shapes": preset.shapes, "epochs": preset.pretrain_epochs,
              "batch_size": preset.batch_size, "trainer": args.trainer_config}  # fmt: skip
    backbones = {"pretrain-resnet": (RESNET, 2e-3)}
    if preset.pretrain_vit:
        backbones["pretrain-vit"] = (vit(preset.image_size, preset.vit_width), 1e-3)
    pretrained = {
        stage: run_stage(
            out, stage, {"model": model, "lr": lr, **shared}, pretrain(model, preset, lr, group, args.trainer)
        )
        for stage, (model, lr) in backbones.items()
    }
    checkpoints = {stage: result["checkpoint"] for stage, result in pretrained.items()}

    # 2. One policy per encoder, same demonstrations, trunk, head, optimiser and steps.
    demos = out / "demos"
    recipe = {"image_size": preset.image_size, "episodes": preset.episodes, "steps": preset.steps,
              "batch_size": preset.batch_size, "trunk": TRUNK, "lr": LR, "trainer": args.trainer_config}  # fmt: skip
    trained = []
    for arm in arms(preset, args.vit_weights, timm_weights):
        weights = checkpoints.get(arm.weights, arm.weights)
        folder = "policy-" + arm.label.lower().replace(" ", "-").replace(":", "-")
        config = {"arm": asdict(arm), "weights": weights, **recipe}
        trained.append(
            (arm, run_stage(out, folder, config, train_policy(arm, preset, demos, weights, group, args.trainer)))
        )
    if not kit.is_global_zero():
        return  # the other ranks are done: evaluation and the report are rank 0's, after every Trainer is finished

    # 3. Every policy in closed loop on the same episodes, beside the expert and random actions.
    episodes = {"image_size": preset.image_size, "episodes": preset.eval_episodes, "seeds": preset.eval_seeds}
    rows = []
    for arm, result in trained:
        policy = {"checkpoint": result["checkpoint"], "step": result["step"], **episodes}
        folder = Path(result["checkpoint"]).parent
        rows.append(
            (arm, result, run_stage(folder, "eval", policy, evaluate_policy(preset, result["checkpoint"]), cheap=True))
        )
    baselines = run_stage(out, "baselines", episodes, evaluate_baselines(preset), cheap=True)

    # 4. The report.
    text = report(args.preset, rows, baselines, pretrained)
    (out / "report.md").write_text(text)
    figure = success_chart(rows, baselines, out / "success.png")
    log_report(out, group, rows, baselines, figure)
    print(text)
    print(f"report: {out / 'report.md'}  figure: {figure}  ({(time.perf_counter() - started) / 60:.1f} min)")
