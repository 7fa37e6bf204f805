"""Train several models on the same data with the same recipe and keep their error curves.

Shared by the degradation and shortcut-option recipes: every model gets the same seed, batches,
schedule and budget, so the curves differ only by the architecture.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger

from bridge.data import ImageDataModule
from bridge.lit import ImageClassifier
from bridge.lit.curves import ErrorCurves
from bridge.lit.lightning_cli import wandb_offline


@dataclass(frozen=True)
class Run:
    label: str
    model: str
    kwargs: dict = field(default_factory=dict)
    optimizer: str = "sgd"  # SGD + momentum for CNNs; "adamw" for Transformers


@dataclass(frozen=True)
class Recipe:
    epochs: int
    lr_sgd: float = 0.1
    lr_adamw: float = 1e-3
    warmup_steps: int = 100  # linear from lr/10, for every model alike (the paper warmed its deepest net up)


@dataclass
class Result:
    curves: ErrorCurves
    seconds: float
    params: int


def train(run: Run, recipe: Recipe, data: ImageDataModule, out: Path, group: str, **trainer_kwargs) -> Result:
    L.seed_everything(0, verbose=False)  # the same initial draw and batch order for every model
    if run.optimizer == "sgd":
        optimizer = functools.partial(torch.optim.SGD, lr=recipe.lr_sgd, momentum=0.9, weight_decay=1e-4)
    else:
        optimizer = functools.partial(torch.optim.AdamW, lr=recipe.lr_adamw, weight_decay=0.05)
    module = ImageClassifier(
        run.model, num_classes=data.num_classes, in_chans=data.in_chans, model_kwargs=run.kwargs,
        optimizer=optimizer, lr_schedule="cosine", warmup_steps=recipe.warmup_steps,
    )  # fmt: skip
    curves = ErrorCurves()
    logger = WandbLogger(save_dir=str(out), project="bridge", group=group, name=run.label, offline=wandb_offline())
    trainer = L.Trainer(
        max_epochs=recipe.epochs, logger=logger, callbacks=[curves], enable_checkpointing=False,
        default_root_dir=str(out), log_every_n_steps=10, **trainer_kwargs,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(module, data)
    seconds = time.perf_counter() - start
    if trainer.is_global_zero:
        logger.experiment.finish()  # one W&B run per model
    return Result(curves, seconds, sum(p.numel() for p in module.model.parameters()))


def train_all(runs: list[Run], recipe: Recipe, data: ImageDataModule, out: Path, group: str, **trainer_kwargs):
    results = {}
    for run in runs:
        print(f"\n=== {group}: {run.label} ({run.model} {run.kwargs or ''}) ===", flush=True)
        results[run.label] = train(run, recipe, data, out, group, **trainer_kwargs)
    return results


def is_global_zero() -> bool:
    return L.fabric.utilities.rank_zero.rank_zero_only.rank == 0


def batches(value: str) -> int | float:
    """Lightning's limit_*_batches: "3" is three batches, "0.25" a quarter of them."""
    return int(value) if value.isdigit() else float(value)
