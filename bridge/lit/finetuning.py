"""Freeze the backbone for the first epochs of fine-tuning, then train everything."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch import nn


class BackboneFreeze(Callback):
    """Train only the classifier until ``unfreeze_at_epoch``, then the whole model.

    Lightning's ``BackboneFinetuning`` wants a single ``backbone`` submodule and adds its parameters to the
    optimizer when it unfreezes. Here the optimizer holds both groups from the start (the backbone group
    with its own learning rate) and freezing only switches ``requires_grad``: parameters without a gradient
    are skipped by every torch optimizer, and a run resumed at any epoch restores the same optimizer.
    While frozen, the backbone's BatchNorm layers also stay in eval mode, so their statistics do not drift.
    """

    def __init__(self, unfreeze_at_epoch: int = 1) -> None:
        self.unfreeze_at_epoch = unfreeze_at_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        frozen = trainer.current_epoch < self.unfreeze_at_epoch
        for p in pl_module.backbone_parameters():
            p.requires_grad_(not frozen)
        head = pl_module.model.get_submodule(pl_module.model.head_name)
        for module in pl_module.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module is not head:
                module.train(not frozen)
