"""Train several models on the same data with the same recipe and keep their error curves.

Shared by the degradation and shortcut-option recipes: every model gets the same seeds, batches,
schedule and budget, so the curves differ only by the architecture. ``--seeds N --seed S`` trains every
model with seeds S ... S+N-1 (initial weights, batch order, augmentation); the data are the same for all.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from jsonargparse import ArgumentParser
from jsonargparse.typing import NonNegativeInt, PositiveInt

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
    seed: int = 0


def add_seed_arguments(parser: ArgumentParser, seeds: int = 1) -> None:
    parser.add_argument("--seeds", type=PositiveInt, default=seeds, help=f"training runs per model ({seeds})")
    parser.add_argument("--seed", type=NonNegativeInt, default=0, help="first training seed (SEED ... SEED+SEEDS-1)")


def seed_list(args) -> list[int]:
    return list(range(args.seed, args.seed + args.seeds))


def train(run: Run, recipe: Recipe, data: ImageDataModule, out: Path, group: str, given: dict, seed: int = 0) -> Result:
    """One model; ``given`` are the command line's --trainer.* settings (see recipes.kit.parse)."""
    L.seed_everything(seed, verbose=False)  # every model of one seed: the same batch order
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
    config = {"experiment": group, "label": run.label, "model": run.model, "seed": seed, "optimizer": run.optimizer}
    wandb_run = {"job_type": "train", "config": config, "tags": [f"{k}:{v}" for k, v in config.items()]}
    trainer = kit.trainer(
        out, f"{run.label} seed {seed}", group, given, callbacks=[curves], checkpoint_every_n_steps=None,
        max_epochs=recipe.epochs, max_steps=recipe.max_steps, log_every_n_steps=10, wandb_run=wandb_run,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(module, data)
    seconds = time.perf_counter() - start
    kit.finish(trainer)  # one W&B run per model
    return Result(curves, seconds, sum(p.numel() for p in module.model.parameters()), seed)


def train_all(
    runs: list[Run], recipe: Recipe, data: ImageDataModule, out: Path, group: str, given: dict, seeds=(0,)
) -> dict[str, list[Result]]:
    """label -> one Result per seed."""
    results = {}
    for run in runs:
        for seed in seeds:
            print(f"\n=== {group}: {run.label} ({run.model} {run.kwargs or ''}) seed {seed} ===", flush=True)
            results.setdefault(run.label, []).append(train(run, recipe, data, out, group, given, seed))
    return results


def error_curves(results: dict[str, list[Result]]) -> dict[str, dict]:
    """label -> {"train": [...], "test": [...]} averaged over the seeds (the figures' input), and "seeds": each
    seed's own curves (curves.json keeps them)."""
    return {
        label: {
            "train": np.mean([r.curves.train for r in rs], axis=0).tolist(),
            "test": np.mean([r.curves.test for r in rs], axis=0).tolist(),
            "seeds": {str(r.seed): {"train": r.curves.train, "test": r.curves.test} for r in rs},
        }
        for label, rs in results.items()
    }


def final_errors(results: list[Result], split: str = "train") -> np.ndarray:
    """The last epoch's error (%) of each seed, a (seeds, 1) matrix for bridge.analysis.bootstrap."""
    return np.array([[getattr(r.curves, split)[-1]] for r in results])
