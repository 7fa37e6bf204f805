"""The lineage's work, one function per kind of stage: pretrain an encoder, train a policy, evaluate.

Each returns ``work(folder, resume)`` for :func:`recipes.stages.run_stage`, which skips it when its result is on
disk. ``given`` is the command line's ``--trainer.*`` settings (see :func:`recipes.kit.parse`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer

from bridge.analysis.summary import count_macs
from bridge.data import ImageDataModule
from bridge.lit import ImageClassifier
from bridge.lit.vla import VLAPolicy
from bridge.vla.config import PolicyConfig
from bridge.vla.demos import DemoDataModule
from bridge.vla.evaluate import evaluate, write_video
from bridge.vla.loading import load_policy
from recipes import kit
from recipes.lineage.presets import LR, TRUNK, WARMUP, Arm, Preset
from recipes.lineage.report import BASELINES


def trainer(folder: Path, label: str, group: str, given: dict, **settings) -> L.Trainer:
    """A Trainer writing into the stage's folder; its Timer counts training time only, across resumes too."""
    return kit.trainer(
        folder, label, group, given, callbacks=[Timer(verbose=False)], checkpoint_every_n_steps=50,
        log_every_n_steps=10, num_sanity_val_steps=0, **settings,
    )  # fmt: skip


def train_seconds(t: L.Trainer) -> float:
    return next(cb for cb in t.callbacks if isinstance(cb, Timer)).time_elapsed("train")


def pretrain(model: tuple[str, dict], preset: Preset, lr: float, group: str, given: dict):
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
        t = trainer(folder, f"pretrain {name}", group, given, max_epochs=preset.pretrain_epochs)
        t.fit(module, data, ckpt_path=resume)
        seconds = train_seconds(t)
        accuracy = t.validate(module, data, verbose=False)[0]["val/acc"]
        t.save_checkpoint(folder / "classifier.ckpt")
        kit.finish(t)
        print(f"{name} on shapes: validation accuracy {accuracy:.1%} in {seconds:.0f} s", flush=True)
        return {"model": name, "checkpoint": str(folder / "classifier.ckpt"), "val_acc": accuracy, "seconds": seconds}

    return work


def train_policy(arm: Arm, preset: Preset, demos: Path, weights: str | None, group: str, given: dict):
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
        t = trainer(folder, arm.label, group, given, max_steps=preset.steps, gradient_clip_val=1.0)
        t.fit(module, data, ckpt_path=resume)
        seconds = train_seconds(t)
        validated = t.validate(module, data, verbose=False)  # empty when the demo set is too small to hold out
        action_mae = validated[0]["val/action_mae"] if validated else math.nan
        t.save_checkpoint(folder / "policy.ckpt")
        kit.finish(t)
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
        policy = load_policy(checkpoint, map_location="cuda" if torch.cuda.is_available() else "cpu")
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
