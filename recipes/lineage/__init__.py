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

Every stage is resumable (see recipes/resumable.py): rerun the same command after an interruption. The budgets
and arms are in presets.py, the five stages in stages.py and the work of each unit in work.py, the statistics in
report_data.py, the report in report.py; pool.py runs units side by side (``--parallel``), one thread each.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

import torch
from jsonargparse import ArgumentParser, Namespace
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from bridge.errors import BridgeError
from bridge.models import read_state_dict
from bridge.models.timm_adapter import check_timm_name
from bridge.runs import FolderLock
from bridge.vla.worlds import get_world
from recipes import kit
from recipes.lineage import stages
from recipes.lineage.pool import stage_pool
from recipes.lineage.presets import PRESETS, SMOKE, Preset, arms, cached_timm_weights, load_preset
from recipes.lineage.report import check_readme
from recipes.live_view import LiveView
from recipes.resumable import claim_folder


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = kit.parse(parser, argv)
    name, preset, out = plan(parser, args)
    claim_folder(out, "lineage")
    trainer, trainer_config = {**preset.trainer, **args.trainer}, {**preset.trainer, **args.trainer_config}
    # Training runs side by side in single-threaded processes where the preset says so, unless the Trainer spans
    # processes itself (DDP: every rank must run every stage, in step).
    processes = preset.parallel if single_process(trainer_config) else 1
    live = LiveView(out, f"lineage, preset {name}", enabled=not args.verbose and kit.is_global_zero())
    with FolderLock(out, "lineage"):  # a second run on the same --out is refused, not run twice
        with stage_pool(processes) as pool, live:
            run = stages.Lineage(
                name, preset, out, list(range(args.seed, args.seed + preset.seeds)),
                arms(preset, args.vit_weights, args.timm_weights or cached_timm_weights(preset.timm)),
                trainer, trainer_config, pool, processes, args.readme and Path(args.readme),
                verbose=args.verbose, live=live.enabled, log_artifacts=args.log_artifacts,
            )  # fmt: skip
            backbones = stages.pretrain(run)
            demos = stages.collect(run)
            trained = stages.train(run, backbones, demos)
            pretrained = {key: future.result() for key, future in backbones.items()}
            if not kit.is_global_zero():
                return  # the other ranks are done: evaluation and the report are rank 0's, after every Trainer
            runs, baselines = stages.evaluate(run, trained)
        stages.report(run, runs, baselines, pretrained)


def build_parser() -> ArgumentParser:
    parser = kit.recipe_parser(
        "lineage",
        __doc__,
        epilog="Trainer settings pass through to every stage: --trainer.devices 2 --trainer.strategy ddp",
    )
    parser.add_argument(
        "--preset", default="tiny", help=f"{', '.join(sorted(PRESETS))}, or a YAML file of any Preset fields on top "
        "of a base preset (base: tiny, vit_width: 96, ...)"
    )  # fmt: skip
    parser.add_argument(
        "--world", help="where the policies act (the preset's: reach), e.g. babyai:GoToRedBall: then every encoder "
        "starts from scratch, beside BabyAI's FiLM-CNN"
    )  # fmt: skip
    parser.add_argument("--out", default=None, help="default runs/lineage/<preset>[-<world>][-smoke]")
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
    parser.add_argument("--lr", type=PositiveFloat, help="AdamW's learning rate for every policy (2e-3)")
    parser.add_argument("--head", choices=("continuous", "bins"), help="the action head in Reach (continuous)")
    parser.add_argument("--bin-sigma", type=NonNegativeFloat, help="bins: HL-Gauss target width in bins (0: one-hot)")
    parser.add_argument(
        "--parallel", type=PositiveInt, help="training runs side by side, one torch thread each (tiny: 2, else 1)"
    )
    parser.add_argument("--timm", help="the timm encoder, e.g. timm:resnet18 (weights used when in the HF cache)")
    parser.add_argument("--timm-weights", help="a weights file for the timm encoder")
    parser.add_argument("--vit-weights", help="timm ViT-Tiny weights: adds a 'ViT-Tiny timm weights' policy")
    parser.add_argument(
        "--vit-pretraining", action=argparse.BooleanOptionalAction, help="pretrain the ViT on shapes too"
    )
    parser.add_argument("--readme", help="also write the answer (table, verdicts, chart) into this file's demo block")
    parser.add_argument(
        "--smoke", action="store_true", help="every stage on a few examples (e.g. --preset gpu on a CPU)"
    )
    parser.add_argument(
        "--log-artifacts", action="store_true", help="log the checkpoints and the demo set as W&B artifacts"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show Lightning's and W&B's output too (always in each stage's log.txt)"
    )
    return parser


def plan(parser: ArgumentParser, args: Namespace) -> tuple[str, Preset, Path]:
    """The preset's name, the preset with the command line's settings on top, and the run's folder; bad settings end
    in parser.error."""
    try:
        name, base = load_preset(args.preset)
    except BridgeError as err:
        parser.error(str(err))
    if args.image_size is not None and (args.image_size < 16 or args.image_size % 8):
        parser.error(
            f"--image-size must be a multiple of 8 and at least 16 (the ViT cuts 8x8 patches), got {args.image_size}"
        )
    for flag, path in (("--timm-weights", args.timm_weights), ("--vit-weights", args.vit_weights)):
        if path is not None and not Path(path).is_file():
            parser.error(f"{flag} {path} is not a file")
        if path is not None:  # read safely now, not after the pretraining and the demos
            try:
                read_state_dict(path)
            except BridgeError as err:
                parser.error(f"{flag}: {err}")
    if args.readme is not None:
        try:
            check_readme(Path(args.readme))
        except BridgeError as err:
            parser.error(str(err))
    preset = replace(base, **SMOKE) if args.smoke else base
    overrides = {
        "steps": args.steps, "episodes": args.episodes, "pretrain_epochs": args.pretrain_epochs,
        "shapes": tuple(args.shapes) if args.shapes else None, "eval_episodes": args.eval_episodes,
        "eval_seeds": args.eval_seeds, "image_size": args.image_size, "batch_size": args.batch_size,
        "timm": args.timm, "pretrain_vit": args.vit_pretraining, "seeds": args.seeds,
        "curve_points": args.curve_points, "arms": tuple(args.arms) if args.arms else None,
        "parallel": args.parallel, "world": args.world, "lr": args.lr, "head": args.head, "bin_sigma": args.bin_sigma,
    }  # fmt: skip
    if args.world not in (None, preset.world) and not args.arms:
        overrides["arms"] = ()  # the preset's arms are its world's; another world compares all of its own
    preset = replace(preset, **{k: v for k, v in overrides.items() if v is not None})
    try:
        world = get_world(preset.world)
    except BridgeError as err:
        parser.error(f"--world: {err}")
    if args.image_size is not None and "image_size" not in world.options:
        side = world.observation.image_size
        parser.error(
            f"--image-size: {preset.world} renders its own {side}x{side} frames and every encoder there starts from "
            "scratch, so --image-size (Reach's frames and the shapes pretraining images) has no effect; leave it out"
        )
    try:
        check_timm_name(preset.timm.removeprefix("timm:"))
    except BridgeError as err:
        parser.error(f"--timm: {err}")
    known = [arm.label for arm in arms(replace(preset, arms=()), args.vit_weights, None)]
    unknown = [label for label in preset.arms if label not in known]
    if unknown:
        parser.error(f"--arms: no policy {', '.join(map(repr, unknown))} here; choose from {', '.join(known)}")
    timm_arm = preset.timm.removeprefix("timm:")
    trained = [arm.label for arm in arms(preset, args.vit_weights, None)]
    for flag, value in (("--timm", args.timm), ("--timm-weights", args.timm_weights)):
        if value is not None and timm_arm not in trained:
            fix = (
                f"add {timm_arm!r} to --arms" if timm_arm in known else f"{preset.world} has no timm arm; leave it out"
            )
            parser.error(f"{flag} has no effect: no timm arm is trained here ({', '.join(trained)}); {fix}")
    suffix = "" if args.world in (None, base.world) else "-" + args.world.replace(":", "-").lower()
    suffix += "-smoke" if args.smoke else ""  # never in the folder of the preset's real run
    try:
        out = kit.out_folder(args.out or f"runs/lineage/{name}{suffix}")
    except BridgeError as err:
        parser.error(str(err))
    return name, preset, out


def single_process(trainer: dict) -> bool:
    """Whether every Trainer of these ``--trainer.*`` settings stays in this one process: no DDP over devices or
    nodes (``devices`` left to "auto" spans every GPU), and no launcher (torchrun) started this one as a rank."""
    devices = trainer.get("devices", "auto" if torch.cuda.device_count() > 1 else 1)
    spans = devices not in (1, "1") or trainer.get("num_nodes", 1) != 1 or "strategy" in trainer
    return not spans and "WORLD_SIZE" not in os.environ
