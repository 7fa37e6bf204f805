"""One place builds every Trainer: its run folder, its W&B logger and the callbacks every run gets.

``python -m bridge fit`` (the LightningCLI) and every recipe go through :func:`run_settings`, so a run looks the
same however it was started: ``<root>/checkpoints/last.ckpt`` (and ``best.ckpt`` when there is a metric to
choose it by), ``<root>/wandb/``, the learning rate and the checkpoint paths in W&B.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.accelerators import Accelerator, CPUAccelerator, CUDAAccelerator, MPSAccelerator, XLAAccelerator
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger, WandbLogger

from bridge.errors import ConfigError
from bridge.lit.callbacks import LastCheckpoint, LogCheckpointPaths
from bridge.lit.checkpoint_io import AtomicCheckpointIO
from bridge.tracking import wandb_settings

# Lightning's copy of torch's tree flattening builds LeafSpec, which torch 2.10+ deprecates; every training step
# would say so. Only that warning from that module is silenced.
warnings.filterwarnings(
    "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning,
    module=r"lightning\.pytorch\.utilities\._pytree",
)  # fmt: skip

CHECKPOINT_EVERY_N_STEPS = 100  # "last.ckpt" during an epoch too, so a killed run loses at most this many steps


def wandb_logger(root: str | Path, name: str, group: str | None = None, **run) -> WandbLogger | None:
    """The W&B logger of a run: its files in the run folder, offline unless the user went online, none at all
    under ``WANDB_MODE=disabled``. ``run`` goes to ``wandb.init`` (``job_type``, ``config``, ``tags``) and to the
    logger (``log_model``: checkpoints as artifacts)."""
    settings = wandb_settings()
    if settings["mode"] == "disabled":
        return None
    # mode goes to wandb.init as it is: the logger's own offline=True sets WANDB_MODE for the whole process and
    # refuses log_model, though an offline run keeps its artifacts for `wandb sync`.
    return WandbLogger(save_dir=str(root), name=name, group=group, **{"job_type": "train", "log_model": False,
                       **settings, **run})  # fmt: skip


def check_cpu_devices(accelerator: str | Accelerator = "auto", devices: object = "auto") -> None:
    """Refuse more CPU processes than cores: DDP would start them all and crawl, or run out of memory."""
    if isinstance(accelerator, Accelerator):
        on_cpu = isinstance(accelerator, CPUAccelerator)
    elif accelerator == "auto":  # what Lightning picks: an accelerator when one is there, else the CPU
        on_cpu = not any(a.is_available() for a in (CUDAAccelerator, MPSAccelerator, XLAAccelerator))
    else:
        on_cpu = accelerator == "cpu"
    cores, wanted = os.cpu_count() or 1, str(devices)
    if on_cpu and wanted.isdigit() and int(wanted) > cores:
        raise ConfigError(
            f"--trainer.devices {wanted} asks for {wanted} CPU processes, but this machine has {cores} cores; "
            f"use --trainer.devices {cores} or fewer (GPUs: --trainer.accelerator gpu)"
        )


def run_settings(
    root: str | Path,
    name: str,
    group: str | None = None,
    *,
    logger: bool | Logger | Sequence[Logger] | None = True,
    callbacks: Sequence[Callback] = (),
    monitor: tuple[str, str] | None = None,
    checkpoint_every_n_steps: int | None = CHECKPOINT_EVERY_N_STEPS,
    accelerator: str | Accelerator = "auto",
    devices: object = "auto",
    wandb_run: dict | None = None,
) -> dict:
    """The Trainer arguments that make a run a bridge run: ``default_root_dir``, ``logger``, ``callbacks``.

    ``logger`` True (or None) is W&B; a logger given is kept. The callbacks given come first, then those every
    run gets, each unless one of its kind is already there: ``best.ckpt`` on ``monitor`` (metric, mode),
    ``last.ckpt`` every ``checkpoint_every_n_steps`` steps and at epoch ends (None: no checkpoints at all),
    the learning rate, and the checkpoint paths in W&B. ``wandb_run``: what the W&B logger records of the run (see
    :func:`wandb_logger`). ``accelerator`` and ``devices`` are only checked.
    """
    check_cpu_devices(accelerator, devices)
    root = Path(root)
    if logger is True or logger is None:
        logger = wandb_logger(root, name, group, **(wandb_run or {})) or False
    given = list(callbacks)
    added: list[Callback] = []
    if checkpoint_every_n_steps and not any(isinstance(cb, ModelCheckpoint) for cb in given):
        if monitor is not None:
            metric, mode = monitor
            added.append(ModelCheckpoint(dirpath=root / "checkpoints", filename="best", monitor=metric, mode=mode))
        added.append(LastCheckpoint(root / "checkpoints", every_n_train_steps=checkpoint_every_n_steps))
    if logger and not any(isinstance(cb, LearningRateMonitor) for cb in given):
        added.append(LearningRateMonitor(logging_interval="step"))
    if not any(isinstance(cb, LogCheckpointPaths) for cb in given):
        added.append(LogCheckpointPaths())
    settings = {
        "default_root_dir": str(root), "logger": logger, "callbacks": given + added,
        "plugins": [AtomicCheckpointIO()],  # a crash while saving never leaves a truncated checkpoint
    }  # fmt: skip
    if not checkpoint_every_n_steps:
        settings["enable_checkpointing"] = False  # or Lightning adds a checkpoint callback of its own
    return settings


def build_trainer(
    root: str | Path,
    name: str,
    group: str | None = None,
    *,
    logger: bool | Logger | Sequence[Logger] | None = True,
    callbacks: Sequence[Callback] = (),
    monitor: tuple[str, str] | None = None,
    checkpoint_every_n_steps: int | None = CHECKPOINT_EVERY_N_STEPS,
    wandb_run: dict | None = None,
    **trainer_kwargs,
) -> L.Trainer:
    """A Trainer for the run ``name`` in folder ``root`` (see :func:`run_settings`); ``trainer_kwargs`` go to
    ``lightning.Trainer`` as they are. ``group`` gathers runs in W&B (a recipe's models, a pipeline's stages)."""
    settings = run_settings(
        root, name, group, logger=logger, callbacks=callbacks, monitor=monitor,
        checkpoint_every_n_steps=checkpoint_every_n_steps, accelerator=trainer_kwargs.get("accelerator", "auto"),
        devices=trainer_kwargs.get("devices", "auto"), wandb_run=wandb_run,
    )  # fmt: skip
    return L.Trainer(**{**settings, **trainer_kwargs})
