"""Small callbacks every run gets: the best checkpoint's path in the W&B summary."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger


class LogBestCheckpoint(Callback):
    """Record where the best and last checkpoints are, so ``wandb sync``-ed runs point back to the weights."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        checkpoint = trainer.checkpoint_callback
        if checkpoint is None or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.summary["best_checkpoint"] = checkpoint.best_model_path
                logger.experiment.summary["best_score"] = (
                    float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None
                )
                logger.experiment.summary["last_checkpoint"] = checkpoint.last_model_path
