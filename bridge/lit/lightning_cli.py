"""``python -m bridge fit|validate|test|predict``: LightningCLI with bridge's run defaults.

Every run lives in one directory (``trainer.default_root_dir``, ``runs/<name>`` by default) holding its
checkpoints and its W&B files. W&B is the logger unless the config names another: offline unless
``WANDB_MODE=online`` or an API key is set, so ``wandb sync <run dir>/wandb/offline-run-*`` uploads later.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from bridge.lit.callbacks import LastCheckpoint, LogCheckpointPaths

CHECKPOINT_EVERY_N_STEPS = 100  # "last.ckpt" during an epoch too, so a killed run loses at most this many steps


def wandb_offline() -> bool:
    """W&B runs offline unless asked to go online or a key is available (WANDB_MODE wins)."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode:
        return mode in ("offline", "dryrun", "disabled")
    if os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError):
        return True


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

    def _instantiate_trainer(self, config: dict, callbacks: list) -> object:
        cores, devices = os.cpu_count() or 1, str(config.get("devices"))
        if config.get("accelerator") == "cpu" and devices.isdigit() and int(devices) > cores:
            raise ValueError(
                f"--trainer.devices {devices} asks for {devices} CPU processes, but this machine has {cores} cores; "
                f"use --trainer.devices {cores} or fewer (GPUs: --trainer.accelerator gpu)"
            )
        config_root = self.config.get(str(self.subcommand), self.config)
        name = config_root.get("name") or _default_name(self.model)
        root = Path(config.get("default_root_dir") or Path("runs") / name)
        config["default_root_dir"] = str(root)
        if config.get("logger") in (None, True):
            config["logger"] = WandbLogger(
                save_dir=str(root), name=name, project="bridge", offline=wandb_offline(), log_model=False
            )
        existing = list(config.get("callbacks") or []) + callbacks
        if not any(isinstance(cb, ModelCheckpoint) for cb in existing):
            monitor, mode = getattr(self.model, "monitor", ("val/loss", "min"))
            every = config_root.get("checkpoint_every_n_steps") or CHECKPOINT_EVERY_N_STEPS
            callbacks.append(ModelCheckpoint(dirpath=root / "checkpoints", filename="best", monitor=monitor, mode=mode))
            callbacks.append(LastCheckpoint(dirpath=root / "checkpoints", every_n_train_steps=every))
        if config["logger"] and not any(isinstance(cb, LearningRateMonitor) for cb in existing):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        callbacks.append(LogCheckpointPaths())
        return super()._instantiate_trainer(config, callbacks)


def _default_name(model) -> str:
    hparams = getattr(model, "hparams", {})
    return str(hparams.get("model", type(model).__name__)).replace(":", "-").replace("/", "-")
