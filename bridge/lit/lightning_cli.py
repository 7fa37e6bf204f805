"""``python -m bridge fit|validate|test|predict``: LightningCLI with bridge's run defaults.

Every run lives in one directory (``trainer.default_root_dir``, ``runs/<name>`` by default) holding its
checkpoints and its W&B files; :mod:`bridge.lit.trainer` sets it up as it does for every recipe. W&B is the
logger unless the config names another: offline unless ``WANDB_MODE=online`` or an API key is set, so
``wandb sync <run dir>/wandb/offline-run-*`` uploads later.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from bridge.lit.trainer import CHECKPOINT_EVERY_N_STEPS, run_settings


class SaveAndLogConfig(SaveConfigCallback):
    """config.yaml in the run directory, and the whole resolved config (optimizer included) in W&B."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": self.config.as_dict()})


class BridgeCLI(LightningCLI):
    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            model_class=None,
            datamodule_class=None,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=args,
            run=run,
            save_config_callback=SaveAndLogConfig,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--name", default=None, help="run name; the run directory defaults to runs/<name>")
        parser.add_argument(
            "--checkpoint_every_n_steps", type=int, default=CHECKPOINT_EVERY_N_STEPS,
            help="also write last.ckpt every N training steps, not only at epoch ends",
        )  # fmt: skip

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        # Normalisation and input size follow a pretrained timm model (its pretrained_cfg).
        mean, std = getattr(self.model, "mean", None), getattr(self.model, "std", None)
        if mean is not None and self.datamodule is not None and hasattr(self.datamodule, "mean"):
            self.datamodule.mean, self.datamodule.std = mean, std

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        config = self.config_init.get(str(self.subcommand), self.config_init)
        trainer = config["trainer"]
        name = config.get("name") or _default_name(self.model)
        root = trainer.get("default_root_dir") or Path("runs") / name
        settings = run_settings(
            root, name, logger=trainer.get("logger"), callbacks=trainer.get("callbacks") or [],
            monitor=getattr(self.model, "monitor", ("val/loss", "min")),
            checkpoint_every_n_steps=config.get("checkpoint_every_n_steps") or CHECKPOINT_EVERY_N_STEPS,
            accelerator=trainer.get("accelerator", "auto"), devices=trainer.get("devices", "auto"),
        )  # fmt: skip
        return super().instantiate_trainer(**settings, **kwargs)


def _default_name(model) -> str:
    hparams = getattr(model, "hparams", {})
    return str(hparams.get("model", type(model).__name__)).replace(":", "-").replace("/", "-")
