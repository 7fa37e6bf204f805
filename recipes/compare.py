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

from bridge.data import ImageDataModule
from bridge.lit import ImageClassifier
from bridge.lit.curves import ErrorCurves
from recipes import kit


@dataclass(frozen=True)
class Run:
    label: str
    model: str
    kwargs: dict = field(default_factory=dict)
    optimizer: str = "sgd"  # SGD + momentum for CNNs; "adamw" for Transformers


@dataclass(frozen=True)
class Recipe:
    epochs: int = -1  # -1: as many as max_steps takes
    max_steps: int = -1  # -1: as many as epochs take
    lr_sgd: float = 0.1
    lr_adamw: float = 1e-3
    schedule: str = "cosine"  # or "multistep": the learning rate / 10 at each milestone (iterations)
    milestones: tuple[int, ...] = ()
    warmup_sgd: int = 100  # linear from lr/10 (the paper warmed only its 110-layer net up)
    warmup_adamw: int = 100


@dataclass
class Result:
    curves: ErrorCurves
    seconds: float
    params: int


def train(run: Run, recipe: Recipe, data: ImageDataModule, out: Path, group: str, given: dict) -> Result:
    """One model; ``given`` are the command line's --trainer.* settings (see recipes.kit.parse)."""
    L.seed_everything(0, verbose=False)  # the same initial draw and batch order for every model
    if run.optimizer == "sgd":
        optimizer = functools.partial(torch.optim.SGD, lr=recipe.lr_sgd, momentum=0.9, weight_decay=1e-4)
    else:
        optimizer = functools.partial(torch.optim.AdamW, lr=recipe.lr_adamw, weight_decay=0.05)
    module = ImageClassifier(
        run.model, num_classes=data.num_classes, in_chans=data.in_chans, model_kwargs=run.kwargs,
        optimizer=optimizer, lr_schedule=recipe.schedule, milestones=list(recipe.milestones),
        warmup_steps=recipe.warmup_sgd if run.optimizer == "sgd" else recipe.warmup_adamw,
    )  # fmt: skip
    curves = ErrorCurves()
    trainer = kit.trainer(
        out, run.label, group, given, callbacks=[curves], checkpoint_every_n_steps=None,
        max_epochs=recipe.epochs, max_steps=recipe.max_steps, log_every_n_steps=10,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(module, data)
    seconds = time.perf_counter() - start
    kit.finish(trainer)  # one W&B run per model
    return Result(curves, seconds, sum(p.numel() for p in module.model.parameters()))


def train_all(runs: list[Run], recipe: Recipe, data: ImageDataModule, out: Path, group: str, given: dict):
    results = {}
    for run in runs:
        print(f"\n=== {group}: {run.label} ({run.model} {run.kwargs or ''}) ===", flush=True)
        results[run.label] = train(run, recipe, data, out, group, given)
    return results


def error_curves(results: dict[str, Result]) -> dict[str, dict[str, list[float]]]:
    """label -> {"train": [...], "test": [...]}: the figures' and curves.json's input."""
    return {label: {"train": r.curves.train, "test": r.curves.test} for label, r in results.items()}
