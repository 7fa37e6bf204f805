"""The lineage's work, one function per kind of stage: pretrain an encoder, train a policy, evaluate.

Each returns ``work(folder, resume)`` for :func:`recipes.resumable.run_stage`, which skips it when its result is on
disk. ``given`` is the command line's ``--trainer.*`` settings (see :func:`recipes.kit.parse`).

Seeds: a training run's ``seed`` draws everything the learner chooses (initial weights, batch order, augmentation,
the demonstrations held out for validation). The data are the experiment's fixed input, shared by every seed like
a benchmark's data set: the shapes images and the demonstrations are drawn once, from seed 0 (``DATA_SEED``), so a
difference between seeds is the learner's and collecting demos is paid once. Evaluation runs every policy on
the same episodes (the world's evaluation seeds), so arms and seeds are compared on paired scenes.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, Timer
from lightning.pytorch.loggers import WandbLogger

from bridge.analysis.summary import count_macs
from bridge.data import ImageDataModule
from bridge.lit import ImageClassifier
from bridge.lit.callbacks import ProgressFile
from bridge.tracking import wandb_settings
from bridge.vla.demos import DemoDataModule
from bridge.vla.evaluation.closed_loop import evaluate
from bridge.vla.evaluation.result import EvalResult
from bridge.vla.evaluation.video import write_video
from bridge.vla.policy.configuration import PolicyConfig
from bridge.vla.policy.loading import load_policy
from bridge.vla.training import VLAPolicy
from bridge.vla.worlds import World
from recipes import kit
from recipes.lineage.presets import WARMUP, Arm, Preset, make_world, policy_settings
from recipes.lineage.report import BASELINES
from recipes.resumable import run_stage

DATA_SEED = 0  # the shapes images and the demonstrations: one draw, shared by every training seed
# What each kind of stage returns and the later stages read: a stored result without them is run again.
PRETRAIN_RESULT = ("model", "checkpoint", "val_acc", "seconds")
POLICY_RESULT = ("checkpoint", "step", "encoder_params", "trainable_params", "encoder_macs", "train_seconds",
                 "images_per_second", "val_action_mae", "frames_per_step", "curve")  # fmt: skip
EVAL_RESULT = ("version", "world", "world_options", "episode_seeds", "conditions")


def trainer(folder: Path, label: str, wandb_run: dict, given: dict, **settings) -> L.Trainer:
    """A Trainer writing into the stage's folder; its Timer counts training time only, across resumes too.
    ``wandb_run``: the W&B run's group, job type, config and tags (``Lineage.wandb_run``)."""
    wandb_run = dict(wandb_run)
    return kit.trainer(
        folder, label, wandb_run.pop("group"), given, wandb_run=wandb_run, callbacks=[Timer(verbose=False),
        ProgressFile()], checkpoint_every_n_steps=50, log_every_n_steps=10, num_sanity_val_steps=0, **settings,
    )  # fmt: skip


def train_seconds(t: L.Trainer) -> float:
    return next(cb for cb in t.callbacks if isinstance(cb, Timer)).time_elapsed("train")


def curve_steps(steps: int, points: int) -> list[int]:
    """The optimiser steps at which a policy is evaluated for its learning curve, the last one ``steps``."""
    return sorted({max(1, steps * k // points) for k in range(1, points + 1)})


class SaveAt(Callback):
    """A checkpoint at each of ``steps`` (``<folder>/step-<n>.ckpt``) with the training seconds spent so far, for
    learning curves evaluated after training: no rank ever waits for an evaluation in the middle of a run."""

    def __init__(self, folder: Path, steps: list[int]) -> None:
        self.folder, self.pending = folder, set(steps)

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        step = trainer.global_step
        if step in self.pending:  # once: several batches end on one step under gradient accumulation
            self.pending.remove(step)
            path = self.folder / f"step-{step}.ckpt"
            # Every rank calls it (it ends in a barrier); rank 0 writes. weights_only=False, the whole state, is
            # Lightning's default: said here, it no longer logs a line per checkpoint.
            trainer.save_checkpoint(path, weights_only=False)
            if trainer.is_global_zero:
                path.with_suffix(".json").write_text(json.dumps({"seconds": train_seconds(trainer)}))


def demos(preset: Preset, path: Path, seed: int = DATA_SEED) -> DemoDataModule:
    """The demonstrations at ``path``, drawn once from ``DATA_SEED`` by ``prepare_data()`` when absent, whichever
    training seed first asks; the episodes held out for validation are drawn by ``seed``."""
    world = make_world(preset)
    return DemoDataModule(str(path), world=world.name, world_options=world.options, episodes=preset.episodes,
                          seed=seed, collect_seed=DATA_SEED, batch_size=preset.batch_size,
                          num_workers=preset.num_workers)  # fmt: skip


# Each stage's work is a module-level function bound with functools.partial, not a closure, so that a stage
# pickles into another process (pool.py runs stages side by side).
def collect(preset: Preset, path: Path):
    """The expert demonstrations at ``path``, once for every training seed."""
    return functools.partial(_collect, preset, path)


def _collect(preset: Preset, path: Path, folder: Path, resume) -> dict:
    demos(preset, path).prepare_data()
    return {"path": str(path)}


def pretrain(model: tuple[str, dict], preset: Preset, lr: float, seed: int, wandb_run: dict, given: dict):
    """A classifier of the 12 (colour, shape) classes; its weights become a policy's encoder."""
    return functools.partial(_pretrain, model, preset, lr, seed, wandb_run, given)


def _pretrain(model, preset: Preset, lr: float, seed: int, wandb_run: dict, given: dict, folder: Path, resume) -> dict:
    L.seed_everything(seed, verbose=False)
    name, kwargs = model
    module = ImageClassifier(
        name, num_classes=12, model_kwargs=kwargs, optimizer=functools.partial(torch.optim.AdamW, lr=lr,
        weight_decay=0.05), lr_schedule="cosine", warmup_steps=50, label_smoothing=0.1,
    )  # fmt: skip
    data = ImageDataModule("shapes", image_size=preset.image_size, batch_size=preset.batch_size, augment="flip",
                           shapes_per_split=preset.shapes, seed=DATA_SEED,
                           num_workers=preset.num_workers)  # fmt: skip
    t = trainer(folder, f"pretrain {name} seed {seed}", wandb_run, given, max_epochs=preset.pretrain_epochs)
    t.fit(module, data, ckpt_path=resume)
    seconds = train_seconds(t)
    accuracy = t.validate(module, data, verbose=False)[0]["val/acc"]
    t.save_checkpoint(folder / "classifier.ckpt", weights_only=False)
    kit.finish(t)
    print(f"{name} on shapes: validation accuracy {accuracy:.1%} in {seconds:.0f} s", flush=True)
    return {"model": name, "checkpoint": str(folder / "classifier.ckpt"), "val_acc": accuracy, "seconds": seconds}


def train_policy(arm: Arm, preset: Preset, seed: int, demos: Path, weights: str | None, wandb_run: dict, given: dict):
    """One policy; besides ``policy.ckpt`` it leaves a checkpoint at every learning-curve point (see SaveAt)."""
    return functools.partial(_train_policy, arm, preset, seed, demos, weights, wandb_run, given)


def _train_policy(
    arm: Arm, preset: Preset, seed: int, path: Path, weights: str | None, wandb_run: dict, given: dict, folder: Path,
    resume,
) -> dict:  # fmt: skip
    L.seed_everything(seed, verbose=False)
    config = PolicyConfig(
        encoder=arm.encoder, encoder_kwargs=arm.kwargs, pretrained_file=weights, freeze_encoder=arm.freeze,
        **policy_settings(preset),
    )  # fmt: skip
    module = VLAPolicy(
        config, optimizer=functools.partial(torch.optim.AdamW, lr=preset.lr, weight_decay=0.01),
        warmup_steps=min(WARMUP, preset.steps // 10),
    )  # fmt: skip
    data = demos(preset, path, seed)
    points = curve_steps(preset.steps, preset.curve_points)
    t = trainer(folder, f"{arm.label} seed {seed}", wandb_run, given, max_steps=preset.steps, gradient_clip_val=1.0)
    t.callbacks.append(SaveAt(folder / "curve", points[:-1]))  # the last point is policy.ckpt
    t.fit(module, data, ckpt_path=resume)
    seconds = train_seconds(t)
    validated = t.validate(module, data, verbose=False)
    # Empty when the demo set is too small to hold out; no action MAE for discrete actions either.
    action_mae = validated[0].get("val/action_mae", math.nan) if validated else math.nan
    t.save_checkpoint(folder / "policy.ckpt", weights_only=False)
    kit.finish(t)
    wandb_id = t.logger.version if isinstance(t.logger, WandbLogger) else None  # its evaluation is logged there too
    frames_per_step = preset.batch_size * t.accumulate_grad_batches * t.world_size
    frames = t.global_step * frames_per_step
    curve = [
        {"step": s, "checkpoint": str(folder / "curve" / f"step-{s}.ckpt"),
         "seconds": json.loads((folder / "curve" / f"step-{s}.json").read_text())["seconds"]}
        for s in points[:-1]
    ] + [{"step": t.global_step, "checkpoint": str(folder / "policy.ckpt"), "seconds": seconds}]  # fmt: skip
    encoder = module.policy.encoder.eval()  # as the policy runs it: classifier removed, BatchNorm in eval mode
    frame = torch.zeros(1, 3, config.image_size, config.image_size, device=module.device)
    return {
        "checkpoint": str(folder / "policy.ckpt"),
        "step": t.global_step,
        "encoder_params": sum(p.numel() for p in encoder.parameters()),
        "trainable_params": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "encoder_macs": count_macs(encoder, frame),
        "train_seconds": seconds,
        "images_per_second": frames / seconds if seconds > 0 else math.nan,  # 0 s: a checkpoint without a Timer
        "val_action_mae": action_mae,
        "frames_per_step": frames_per_step,
        "curve": curve,
        "wandb_id": wandb_id,
    }


def eval_world(preset: Preset) -> World:
    """The world as trained, with every instruction phrasing in a world that has held-out ones (Reach)."""
    world = make_world(preset)
    return world.replace(paraphrases="all") if "paraphrases" in world.options else world


def evaluate_policy(preset: Preset, checkpoint: str, episodes: int, video: bool = True, log_to: dict | None = None):
    """``episodes`` per evaluation seed: the first ones of the same scenes whatever the number. ``log_to``: the
    policy's W&B run, which gets this success and the curve's earlier points (see :func:`log_success`)."""
    return functools.partial(_evaluate_policy, preset, checkpoint, episodes, video, log_to)


def _evaluate_policy(
    preset: Preset, checkpoint: str, episodes: int, video: bool, log_to: dict | None, folder: Path, resume
) -> dict:
    policy = load_policy(checkpoint, map_location="cuda" if torch.cuda.is_available() else "cpu")
    result, rolled = evaluate(
        policy.as_agent(), eval_world(preset), episodes=episodes, seeds=preset.eval_seeds, conditions=("policy",),
        record=8 if video else 0, progress=False,
    )  # fmt: skip
    result.checkpoint = checkpoint
    if video:
        result.videos["policy"] = str(write_video(rolled["policy"][:8], folder / "rollouts.gif"))
    if log_to is not None:
        log_success(**{**log_to, "points": [*log_to["points"], (log_to["step"], result.conditions["policy"])]})
    return result.to_dict()


def log_success(wandb_run: dict, folder: Path, wandb_id: str, points: list, step: int) -> None:
    """Closed-loop success along the curve and at the end into the policy's own W&B run, resumed by its id: offline,
    a second file of the same run, which ``wandb sync`` uploads after the first."""
    import wandb

    run = wandb.init(id=wandb_id, resume="allow", dir=str(folder), **wandb_settings(), **wandb_run)
    for point_step, condition in points:
        run.log({"trainer/global_step": point_step, "eval/success": condition.success_rate,
                 "eval/ci95_low": condition.ci95[0], "eval/ci95_high": condition.ci95[1]})  # fmt: skip
    run.summary.update({"eval/success": points[-1][1].success_rate, "eval/step": step})
    run.finish()


def evaluate_baselines(preset: Preset):
    return functools.partial(_evaluate_baselines, preset)


def _evaluate_baselines(preset: Preset, folder: Path, resume) -> dict:
    result, _ = evaluate(
        None, eval_world(preset), episodes=preset.eval_episodes, seeds=preset.eval_seeds,
        conditions=[n for n, _ in BASELINES],
    )  # fmt: skip
    return result.to_dict()


def evaluate_run(preset: Preset, trained: dict, episodes: dict, output: dict, wandb_run: dict) -> list[dict]:
    """A trained policy at every point of its learning curve (stages ``eval-step-<n>``, the last ``eval``, with a
    video), on the same ``episodes`` (the points before the last on the first ``preset.curve_episodes`` of them).
    Cheap stages: new evaluation settings reuse the trained checkpoints. The last one logs the curve's success into
    the policy's W&B run (``wandb_run``: its group, job type, config and tags)."""
    points = []
    for point in trained["curve"]:
        last = point is trained["curve"][-1]
        n = episodes["episodes"] if last else min(preset.curve_episodes or episodes["episodes"], episodes["episodes"])
        config = {"checkpoint": point["checkpoint"], "step": point["step"], **episodes, "episodes": n}
        folder = Path(trained["checkpoint"]).parent
        log_to = None
        if last and trained.get("wandb_id"):
            earlier = [
                (p["step"], EvalResult.from_dict(r).conditions["policy"]) for p, r in zip(trained["curve"], points)
            ]
            run = {k: v for k, v in wandb_run.items() if k != "log_model"}
            log_to = {"wandb_run": run, "folder": folder, "wandb_id": trained["wandb_id"], "points": earlier,
                      "step": point["step"]}  # fmt: skip
        work = evaluate_policy(preset, point["checkpoint"], n, video=last, log_to=log_to)
        name = "eval" if last else f"eval-step-{point['step']}"
        points.append(run_stage(folder, name, config, work, cheap=True, keys=EVAL_RESULT, **output))
    return points
