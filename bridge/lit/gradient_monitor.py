"""Log the gradient norm of every residual block (or layer) during training, e.g. to W&B."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

from bridge.analysis.gradient_flow import block_gradient_norms


class GradientFlowMonitor(Callback):
    """Every ``every_n_steps`` steps, log ``grad_norm/<block>`` for each block of ``pl_module.model``.

    Add it to any run: ``--trainer.callbacks+=bridge.lit.GradientFlowMonitor``. Plain networks show the
    first blocks' norms drifting away from the last ones'; residual ones keep them together.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every_n_steps = every_n_steps

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            norms = block_gradient_norms(pl_module.model)
            pl_module.log_dict({f"grad_norm/{name}": value for name, value in norms.items()})
