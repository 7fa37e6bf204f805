"""Small callbacks every run gets: a last.ckpt that is never far behind, and the checkpoint paths in W&B."""

from __future__ import annotations

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
    ``save_last`` would write a competing ``last-v1.ckpt``. Lightning writes every checkpoint to a
    temporary file and renames it, so a crash never leaves a half-written one.
    """

    def __init__(self, dirpath, every_n_train_steps: int = 100) -> None:
        super().__init__(
            dirpath=dirpath, save_top_k=0, save_last=True, every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,  # one last.ckpt, overwritten, even by a run with other settings
        )  # fmt: skip

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
