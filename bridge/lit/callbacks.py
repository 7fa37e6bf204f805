"""Small callbacks every run gets: a last.ckpt that is never far behind, and the checkpoint paths in W&B."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger


class LogCheckpointPaths(Callback):
    """Record where the best and last checkpoints are, so ``wandb sync``-ed runs point back to the weights."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        summary: dict[str, object] = {}
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, LastCheckpoint):
                summary["last_checkpoint"] = callback.last_model_path
            elif isinstance(callback, ModelCheckpoint) and callback.best_model_path:
                summary["best_checkpoint"] = callback.best_model_path
                if callback.best_model_score is not None:
                    summary["best_score"] = float(callback.best_model_score)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.summary.update(summary)


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` steps and at the end of every epoch.

    A killed run resumes (``--ckpt_path last``) at most N steps back, even mid-epoch. Lightning's own
    ModelCheckpoint saves either every N steps or every epoch, not both; a second callback with
    ``save_last`` would write a competing ``last-v1.ckpt``. So this one saves every N steps as a
    ModelCheckpoint (which is also how ``--ckpt_path last`` finds the file) and adds the epoch ends through
    ``Trainer.save_checkpoint``. Lightning writes each checkpoint whole before it replaces the old one, so a
    crash never leaves a half-written one.
    """

    def __init__(self, dirpath: str | Path, every_n_train_steps: int = 100) -> None:
        super().__init__(
            dirpath=dirpath, save_top_k=0, save_last=True, every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,  # one last.ckpt, overwritten, even by a run with other settings
        )  # fmt: skip
        self.every_n_train_steps = every_n_train_steps

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        step = trainer.global_step
        if trainer.fast_dev_run or trainer.sanity_checking or step % self.every_n_train_steps == 0:
            return  # nothing to save, or the step callback has just saved this very step
        path = str(Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}")
        self.last_model_path = path  # before saving: the path is part of the callback's saved state
        trainer.save_checkpoint(path)
