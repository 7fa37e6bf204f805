"""Per-epoch training and held-out error, recorded in memory for figures like He et al.'s Figure 6."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback


class ErrorCurves(Callback):
    """After each epoch: training error (the epoch's running error, as the paper plots it) and held-out
    error (the validation loop that just ran), both in percent. Synced across DDP ranks by torchmetrics."""

    def __init__(self) -> None:
        self.train: list[float] = []
        self.test: list[float] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Callbacks run before Lightning computes and resets the epoch's logged metrics, so the
        # accuracy object still holds the whole epoch here.
        self.train.append(100.0 * (1.0 - float(pl_module.train_acc.compute())))
        if "val/acc" in trainer.callback_metrics:
            self.test.append(100.0 * (1.0 - float(trainer.callback_metrics["val/acc"])))
