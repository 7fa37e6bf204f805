"""The main job: pretrain a ResNet, plug it, the ViT or a timm model into the VLA policy, compare in closed loop.

1. Pretrain ResNet (and the ViT) as classifiers on ``shapes``, the objects the VLA world draws.
2. Train one VLA policy per encoder on the same demonstrations with the same trunk, head, optimiser and
   step budget: the pretrained ResNet frozen and fine-tuned, the same ResNet from scratch, the ViT from
   scratch and pretrained, a timm model (with its weights when they are on disk).
3. Evaluate every policy on the same closed-loop episodes, beside the expert's ceiling and a random floor.
4. Report: a table (terminal, Markdown), a bar chart, a W&B table, under ``runs/lineage/<preset>/``.

    python -m bridge run lineage [--preset tiny|cpu|gpu] [--trainer.devices 2 --trainer.strategy ddp]

Every stage is resumable (see recipes/stages.py): rerun the same command after an interruption.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.loggers import WandbLogger

from bridge.analysis.plots import plot_bars
from bridge.analysis.summary import count_macs
from bridge.analysis.tables import markdown_table
from bridge.data import ImageDataModule
from bridge.lit import ImageClassifier, LastCheckpoint
from bridge.lit.lightning_cli import wandb_offline
from bridge.lit.vla import VLAPolicy, load_policy
from bridge.vla.demos import DemoDataModule
from bridge.vla.evaluate import evaluate, write_video
from bridge.vla.policy import PolicyConfig
from recipes.compare import is_global_zero
from recipes.stages import run_stage

# The trunk and head of configs/vla_resnet.yaml: FiLM conditioning, two Residual Transformer blocks, L1 head.
TRUNK = {"conditioning": "film", "dim": 64, "depth": 2, "num_heads": 4, "head": "continuous"}
LR, WARMUP = 2e-3, 100  # AdamW for every policy: only the encoder and its first weights differ
BASELINES = (("expert", "ceiling"), ("random", "floor"))


@dataclass(frozen=True)
class Preset:
    image_size: int = 64  # the world's frames, and the pretraining images
    shapes: tuple[int, int, int] = (3000, 300, 300)  # pretraining images (train, validation, test)
    pretrain_epochs: int = 3
    pretrain_vit: bool = True
    vit_width: int = 192  # 96 costs about a quarter: MACs go with the width squared
    episodes: int = 1000  # expert demonstrations
    steps: int = 250  # optimiser steps per policy
    batch_size: int = 64
    eval_episodes: int = 50  # per evaluation seed
    eval_seeds: int = 2
    timm: str = "timm:resnet18"  # weights are used when they are in the local Hugging Face cache
    num_workers: int = 0


PRESETS = {
    # The README demo, sized for 10 minutes on 2 CPU cores: short budgets, so the numbers are rough.
    "tiny": Preset(pretrain_vit=False, vit_width=96, timm="timm:mobilenetv3_small_100"),
    # Sharper numbers on a CPU (about 1.5 hours): the budget configs/vla_resnet.yaml reaches 90% with.
    "cpu": Preset(shapes=(6000, 1200, 1200), pretrain_epochs=5, episodes=5000, steps=2000, eval_seeds=3),
    # One or more GPUs.
    "gpu": Preset(
        shapes=(24000, 2400, 2400), pretrain_epochs=10, episodes=20000, steps=10000, batch_size=256,
        eval_episodes=100, eval_seeds=3, num_workers=4,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Arm:
    """One policy to train: its encoder and where the encoder's first weights come from."""

    label: str
    encoder: str
    kwargs: dict
    init: str  # what the table says: scratch, pretrained on shapes, timm weights
    weights: str | None = None  # a pretraining stage's name, or a weights file
    freeze: bool = False


# ResNet-20's basic blocks behind the ImageNet stem, two stages: a 64x64 frame becomes 8x8 tokens.
RESNET = ("resnet20", {"stem": "imagenet", "layers": [3, 3], "widths": [16, 32]})


def vit(size: int, width: int = 192) -> tuple[str, dict]:
    """The minimal ViT, four blocks over an 8x8 grid of patches; width 192 is timm's ViT-Tiny (its weights load)."""
    return "vit_tiny_patch16_224", {"img_size": size, "patch_size": size // 8, "depth": 4, "embed_dim": width}


def arms(preset: Preset, vit_weights: str | None, timm_weights: str | None) -> list[Arm]:
    r, v = RESNET, vit(preset.image_size, preset.vit_width)
    result = [
        Arm("ResNet frozen", *r, "pretrained on shapes", "pretrain-resnet", freeze=True),
        Arm("ResNet fine-tuned", *r, "pretrained on shapes", "pretrain-resnet"),
        Arm("ResNet scratch", *r, "scratch"),
        Arm("ViT scratch", *v, "scratch"),
    ]
    if preset.pretrain_vit:
        result.append(Arm("ViT fine-tuned", *v, "pretrained on shapes", "pretrain-vit"))
    if vit_weights:
        result.append(Arm("ViT-Tiny timm weights", *vit(preset.image_size), "timm weights (resampled)", vit_weights))
    timm_init = "timm weights" if timm_weights else "scratch (no weights on disk)"
    result.append(Arm(preset.timm.removeprefix("timm:"), preset.timm, {}, timm_init, timm_weights))
    return result


def cached_timm_weights(name: str) -> str | None:
    """The local Hugging Face cache's weights file for a timm model, or None: the recipe never downloads."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name.removeprefix("timm:"))
    if cfg is None or not cfg.hf_hub_id:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        path = try_to_load_from_cache(cfg.hf_hub_id, filename)
        if isinstance(path, str):
            return path
    return None


# -- stages ------------------------------------------------------------------------------------------------


def trainer(folder: Path, label: str, group: str, trainer_kwargs: dict, **kwargs) -> L.Trainer:
    """A Trainer writing into the stage's folder; its Timer counts training time only, across resumes too."""
    logger = WandbLogger(save_dir=str(folder), project="bridge", group=group, name=label, offline=wandb_offline())
    callbacks = [LastCheckpoint(folder / "checkpoints", every_n_train_steps=50), Timer(verbose=False)]
    settings = {
        "default_root_dir": str(folder), "logger": logger, "log_every_n_steps": 10, "num_sanity_val_steps": 0,
        "callbacks": callbacks, **kwargs, **trainer_kwargs,
    }  # fmt: skip
    return L.Trainer(**settings)


def train_seconds(t: L.Trainer) -> float:
    return next(cb for cb in t.callbacks if isinstance(cb, Timer)).time_elapsed("train")


def finish(t: L.Trainer) -> None:
    if t.is_global_zero and isinstance(t.logger, WandbLogger):
        t.logger.experiment.finish()  # one W&B run per stage


def pretrain(model: tuple[str, dict], preset: Preset, lr: float, group: str, trainer_kwargs: dict):
    """A classifier of the 12 (colour, shape) classes; its weights become a policy's encoder."""

    def work(folder: Path, resume: str | None) -> dict:
        L.seed_everything(0, verbose=False)
        name, kwargs = model
        module = ImageClassifier(
            name, num_classes=12, model_kwargs=kwargs, optimizer=functools.partial(torch.optim.AdamW, lr=lr,
            weight_decay=0.05), lr_schedule="cosine", warmup_steps=50, label_smoothing=0.1,
        )  # fmt: skip
        data = ImageDataModule("shapes", image_size=preset.image_size, batch_size=preset.batch_size, augment="flip",
                               shapes_per_split=preset.shapes, num_workers=preset.num_workers)  # fmt: skip
        t = trainer(folder, f"pretrain {name}", group, trainer_kwargs, max_epochs=preset.pretrain_epochs)
        t.fit(module, data, ckpt_path=resume)
        seconds = train_seconds(t)
        accuracy = t.validate(module, data, verbose=False)[0]["val/acc"]
        t.save_checkpoint(folder / "classifier.ckpt")
        finish(t)
        print(f"{name} on shapes: validation accuracy {accuracy:.1%} in {seconds:.0f} s", flush=True)
        return {"model": name, "checkpoint": str(folder / "classifier.ckpt"), "val_acc": accuracy, "seconds": seconds}

    return work


def train_policy(arm: Arm, preset: Preset, demos: Path, weights: str | None, group: str, trainer_kwargs: dict):
    def work(folder: Path, resume: str | None) -> dict:
        L.seed_everything(0, verbose=False)
        config = PolicyConfig(
            encoder=arm.encoder, encoder_kwargs=arm.kwargs, pretrained_file=weights, freeze_encoder=arm.freeze,
            image_size=preset.image_size, **TRUNK,
        )  # fmt: skip
        module = VLAPolicy(
            config, optimizer=functools.partial(torch.optim.AdamW, lr=LR, weight_decay=0.01),
            warmup_steps=min(WARMUP, preset.steps // 10),
        )  # fmt: skip
        data = DemoDataModule(str(demos), episodes=preset.episodes, env={"image_size": preset.image_size},
                              batch_size=preset.batch_size, num_workers=preset.num_workers)  # fmt: skip
        t = trainer(folder, arm.label, group, trainer_kwargs, max_steps=preset.steps, gradient_clip_val=1.0)
        t.fit(module, data, ckpt_path=resume)
        seconds = train_seconds(t)
        validated = t.validate(module, data, verbose=False)  # empty when the demo set is too small to hold out
        action_mae = validated[0]["val/action_mae"] if validated else math.nan
        t.save_checkpoint(folder / "policy.ckpt")
        finish(t)
        frames = t.global_step * preset.batch_size * t.accumulate_grad_batches * t.world_size
        encoder = module.policy.encoder.eval()  # as the policy runs it: classifier removed, BatchNorm in eval mode
        frame = torch.zeros(1, 3, preset.image_size, preset.image_size, device=module.device)
        return {
            "checkpoint": str(folder / "policy.ckpt"),
            "step": t.global_step,
            "encoder_params": sum(p.numel() for p in encoder.parameters()),
            "trainable_params": sum(p.numel() for p in module.parameters() if p.requires_grad),
            "encoder_macs": count_macs(encoder, frame),
            "train_seconds": seconds,
            "images_per_second": frames / seconds if seconds > 0 else math.nan,  # 0 s: a checkpoint without a Timer
            "val_action_mae": action_mae,
        }

    return work


def evaluate_policy(preset: Preset, checkpoint: str):
    def work(folder: Path, resume: str | None) -> dict:
        policy = load_policy(checkpoint, map_location="cuda" if torch.cuda.is_available() else "cpu").policy
        env = {"image_size": preset.image_size, "paraphrases": "all"}
        results, episodes = evaluate(
            policy.as_agent(), env, episodes=preset.eval_episodes, seeds=preset.eval_seeds, conditions=("policy",),
            record=8,
        )  # fmt: skip
        write_video(episodes["policy"][:8], folder / "rollouts.gif")
        return asdict(results["policy"])

    return work


def evaluate_baselines(preset: Preset):
    def work(folder: Path, resume: str | None) -> dict:
        env = {"image_size": preset.image_size, "paraphrases": "all"}
        results, _ = evaluate(
            None, env, episodes=preset.eval_episodes, seeds=preset.eval_seeds, conditions=[n for n, _ in BASELINES]
        )
        return {name: asdict(r) for name, r in results.items()}

    return work


# -- report ------------------------------------------------------------------------------------------------


def rate(result: dict) -> float:
    """The success rate of a stored ``ConditionResult`` (its property does not survive ``asdict``)."""
    return result["successes"] / result["episodes"]


def success_cell(result: dict) -> str:
    low, high = result["ci95"]
    return f"{100 * rate(result):.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


def report(preset_name: str, rows: list[tuple[Arm, dict, dict]], baselines: dict, pretrained: dict) -> str:
    header = ["encoder", "init", "params", "MACs", "train s", "images/s", "success [95% CI]", "action MAE"]
    table = [
        [arm.label, arm.init, f"{t['encoder_params'] / 1e6:.2f} M", f"{t['encoder_macs'] / 1e6:.1f} M",
         f"{t['train_seconds']:.0f}", f"{t['images_per_second']:.0f}", success_cell(scored),
         f"{t['val_action_mae']:.3f}"]
        for arm, t, scored in rows
    ]  # fmt: skip
    table += [[name, role, "", "", "", "", success_cell(baselines[name]), ""] for name, role in BASELINES]
    notes = "\n".join(
        f"- {r['model']} pretrained on shapes: validation accuracy {r['val_acc']:.1%} in {r['seconds']:.0f} s"
        for r in pretrained.values()
    )
    episodes = baselines["expert"]["episodes"]
    return f"""# Lineage: encoders for the VLA policy, preset `{preset_name}`

Closed-loop success on the same {episodes} episodes of bridge/Reach-v0 (held-out paraphrases included).
Params and MACs are the encoder's, on one frame; images/s is training throughput; action MAE is
the validation error of the first predicted action against the expert's, in action units.

{markdown_table(header, table)}
{notes}
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bridge run lineage", description=__doc__.splitlines()[0],
        epilog="Trainer settings pass through to every stage: --trainer.devices 2 --trainer.strategy ddp",
    )  # fmt: skip
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--out", default=None, help="default runs/lineage/<preset>")
    parser.add_argument("--steps", type=positive, help="optimiser steps per policy")
    parser.add_argument("--episodes", type=positive, help="expert demonstrations")
    parser.add_argument("--pretrain-epochs", type=positive)
    parser.add_argument("--shapes", type=positive, nargs=3, metavar=("TRAIN", "VAL", "TEST"), help="pretraining images")
    parser.add_argument("--eval-episodes", type=positive, help="closed-loop episodes per evaluation seed")
    parser.add_argument("--eval-seeds", type=positive)
    parser.add_argument("--image-size", type=int, help="the world's frames (64 by default)")
    parser.add_argument("--batch-size", type=positive)
    parser.add_argument("--timm", help="the timm encoder, e.g. timm:resnet18 (weights used when in the HF cache)")
    parser.add_argument("--timm-weights", help="a weights file for the timm encoder")
    parser.add_argument("--vit-weights", help="timm ViT-Tiny weights: adds a 'ViT-Tiny timm weights' policy")
    parser.add_argument(
        "--vit-pretraining", action=argparse.BooleanOptionalAction, help="pretrain the ViT on shapes too"
    )
    args, rest = parser.parse_known_args(argv)
    trainer_kwargs = trainer_overrides(rest, parser)
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
              "batch_size": preset.batch_size, "trainer": trainer_kwargs}  # fmt: skip
    backbones = {"pretrain-resnet": (RESNET, 2e-3)}
    if preset.pretrain_vit:
        backbones["pretrain-vit"] = (vit(preset.image_size, preset.vit_width), 1e-3)
    pretrained = {
        stage: run_stage(
            out, stage, {"model": model, "lr": lr, **shared}, pretrain(model, preset, lr, group, trainer_kwargs)
        )
        for stage, (model, lr) in backbones.items()
    }
    checkpoints = {stage: result["checkpoint"] for stage, result in pretrained.items()}

    # 2. One policy per encoder, same demonstrations, trunk, head, optimiser and steps.
    demos = out / "demos"
    recipe = {"image_size": preset.image_size, "episodes": preset.episodes, "steps": preset.steps,
              "batch_size": preset.batch_size, "trunk": TRUNK, "lr": LR, "trainer": trainer_kwargs}  # fmt: skip
    trained = []
    for arm in arms(preset, args.vit_weights, timm_weights):
        weights = checkpoints.get(arm.weights, arm.weights)
        folder = "policy-" + arm.label.lower().replace(" ", "-").replace(":", "-")
        config = {"arm": asdict(arm), "weights": weights, **recipe}
        trained.append(
            (arm, run_stage(out, folder, config, train_policy(arm, preset, demos, weights, group, trainer_kwargs)))
        )
    if not is_global_zero():
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
    scores = {arm.label: scored for arm, _, scored in rows} | {name: baselines[name] for name, _ in BASELINES}
    values = {label: 100 * rate(s) for label, s in scores.items()}
    errors = {label: (100 * s["ci95"][0], 100 * s["ci95"][1]) for label, s in scores.items()}
    figure = plot_bars(values, errors, "closed-loop success (%)", out / "success.png")
    log_report(out, group, rows, baselines, figure)
    print(text)
    print(f"report: {out / 'report.md'}  figure: {figure}  ({(time.perf_counter() - started) / 60:.1f} min)")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def trainer_overrides(rest: list[str], parser: argparse.ArgumentParser) -> dict:
    """``--trainer.devices 2 --trainer.strategy=ddp`` -> {"devices": 2, "strategy": "ddp"} (YAML values)."""
    settings, i = {}, 0
    while i < len(rest):
        key, _, value = rest[i].partition("=")
        if not key.startswith("--trainer."):
            parser.error(f"unrecognised argument {rest[i]!r}; Trainer settings are written --trainer.<name> <value>")
        if not value:
            if i + 1 >= len(rest):
                parser.error(f"{key} needs a value")
            i, value = i + 1, rest[i + 1]
        name = key.removeprefix("--trainer.")
        if name not in inspect.signature(L.Trainer).parameters:
            parser.error(f"the Trainer has no setting {name!r} (see lightning.pytorch.Trainer's arguments)")
        settings[name] = yaml.safe_load(value)
        i += 1
    return settings


def log_report(out: Path, group: str, rows: list, baselines: dict, figure: Path) -> None:
    import wandb

    run = wandb.init(project="bridge", group=group, name="report", job_type="report", dir=str(out),
                     mode="offline" if wandb_offline() else "online")  # fmt: skip
    columns = ["encoder", "init", "encoder_params", "encoder_macs", "train_seconds", "images_per_second",
               "success", "ci95_low", "ci95_high", "val_action_mae"]  # fmt: skip
    table = wandb.Table(columns=columns)
    for arm, trained, scored in rows:
        table.add_data(
            arm.label, arm.init, trained["encoder_params"], trained["encoder_macs"], trained["train_seconds"],
            trained["images_per_second"], rate(scored), *scored["ci95"],
            trained["val_action_mae"],
        )  # fmt: skip
    for name, _ in BASELINES:
        table.add_data(name, "baseline", 0, 0, 0.0, 0.0, rate(baselines[name]), *baselines[name]["ci95"], math.nan)
    run.log({"lineage/results": table, "lineage/success": wandb.Image(str(figure))})
    run.finish()


if __name__ == "__main__":
    main()
