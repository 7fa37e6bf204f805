"""``python -m bridge fit|validate|test|predict``: LightningCLI with bridge's run defaults.

Every run lives in one directory (``trainer.default_root_dir``, ``runs/<name>`` by default) holding its
checkpoints and its W&B files; :mod:`bridge.lit.trainer` sets it up as it does for every recipe. W&B is the
logger unless the config names another (see :mod:`bridge.tracking`): offline unless ``WANDB_MODE=online`` or an API
key is set, so ``wandb sync <run dir>/wandb/offline-run-*`` uploads later; none under ``WANDB_MODE=disabled``.
``--log_model true`` logs the checkpoints as W&B artifacts at the end (Lightning's ``log_model``).

"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from bridge.errors import ConfigError
from bridge.lit.callbacks import PredictionWriter, ResumeHint
from bridge.lit.checkpoints import LIGHTNING_NAMES, check_checkpoint
from bridge.lit.trainer import CHECKPOINT_EVERY_N_STEPS, run_settings
from bridge.runs import FolderLock, check_folder_path, folder_kind, is_empty, is_launching_process, mark_folder

RUN = "run"  # the kind bridge marks a training run's folder with (bridge.runs)
JOB_TYPES = {"fit": "train", "validate": "eval", "test": "eval", "predict": "predict"}  # W&B's job_type


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
        parser.add_argument(
            "--log_model", type=bool, default=False, help="log the checkpoints as W&B artifacts at the end of fit"
        )

    def _parse_ckpt_path(self) -> None:
        """Refuse a checkpoint of another kind or model by name, then let Lightning read a classifier's
        hyperparameters from it. A VLAPolicy's are not merged: jsonargparse cannot parse its nested policy
        configuration back, and ``VLAPolicy.on_load_checkpoint`` names any difference from the config itself."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        model = self.config[subcommand].get("model") if subcommand else None
        if ckpt_path in (None, *LIGHTNING_NAMES) or not (model and model.get("class_path")):
            return super()._parse_ckpt_path()
        held = check_checkpoint(ckpt_path, model.class_path, (model.get("init_args") or {}).get("model"))
        if held is None or held[0] != "VLAPolicy":
            super()._parse_ckpt_path()

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        # Normalisation and input size follow a pretrained timm model (its pretrained_cfg).
        mean, std = getattr(self.model, "mean", None), getattr(self.model, "std", None)
        if mean is not None and self.datamodule is not None and hasattr(self.datamodule, "mean"):
            self.datamodule.mean, self.datamodule.std = mean, std

    def before_fit(self) -> None:
        """One run per folder: a new fit never writes into a folder holding another run's checkpoints, and a
        second process on the same run folder is refused (the lock goes with the process, however it ends)."""
        root = Path(self.trainer.default_root_dir)
        if not is_launching_process():
            return
        self._check_run_folder(root)
        ckpt_path = self.config_init[str(self.subcommand)].get("ckpt_path")
        checkpoints = sorted(p.name for p in (root / "checkpoints").glob("*.ckpt"))
        if ckpt_path is None and checkpoints:
            raise ConfigError(
                f"{root} already holds a run ({', '.join(checkpoints)}); resume it with --ckpt_path last, start a "
                "new run with --name <another name>, or delete the folder"
            )
        if ckpt_path == "last" and (root / "checkpoints" / "last.ckpt").is_file():
            self._check_resumed(root / "checkpoints" / "last.ckpt")
        self.run_lock = FolderLock(root, RUN)
        self.run_lock.__enter__()  # released in after_fit, or by the kernel when the process ends
        mark_folder(root, RUN)

    def _before_evaluation(self) -> None:
        """validate, test and predict write into the run folder too (config.yaml, W&B, predictions.csv)."""
        root = Path(self.trainer.default_root_dir)
        if is_launching_process():
            self._check_run_folder(root)
            mark_folder(root, RUN)

    before_validate = before_test = before_predict = _before_evaluation

    def _check_run_folder(self, root: Path) -> None:
        """A run writes only into a folder that is new, empty or a run's: never over files of the user's."""
        check_folder_path(root, "--name or --trainer.default_root_dir")
        if root.is_dir() and not is_empty(root) and folder_kind(root) != RUN:
            found = folder_kind(root)
            held = f"bridge's {found} output" if found else "files bridge did not write"
            names = sorted(p.name for p in root.iterdir())
            raise ConfigError(
                f"{root} holds {held} ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); refusing to "
                "write a run into it. Give the run a folder of its own: --name <another name> or "
                "--trainer.default_root_dir <a new folder>"
            )

    def _check_resumed(self, path: Path) -> None:
        """``--ckpt_path last`` read safely and checked, as a path given is, before Lightning loads it."""
        model = self.config[str(self.subcommand)].get("model")
        if model and model.get("class_path"):
            check_checkpoint(path, model.class_path, (model.get("init_args") or {}).get("model"))

    def after_fit(self) -> None:
        if getattr(self, "run_lock", None) is not None:
            self.run_lock.__exit__(None, None, None)

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        config = self.config_init.get(str(self.subcommand), self.config_init)
        trainer = config["trainer"]
        name = config.get("name") or _default_name(self.model)
        root = trainer.get("default_root_dir") or Path("runs") / name
        callbacks = list(trainer.get("callbacks") or [])
        if self.subcommand == "predict":  # predictions go to the run folder, not only to the returned list
            callbacks.append(PredictionWriter(root))
        if self.subcommand == "fit":
            callbacks.append(ResumeHint(root))
        settings = run_settings(
            root, name, logger=trainer.get("logger"), callbacks=callbacks,
            monitor=getattr(self.model, "monitor", ("val/loss", "min")),
            checkpoint_every_n_steps=config.get("checkpoint_every_n_steps") or CHECKPOINT_EVERY_N_STEPS,
            accelerator=trainer.get("accelerator", "auto"), devices=trainer.get("devices", "auto"),
            wandb_run={"job_type": JOB_TYPES.get(str(self.subcommand), "train"),
                       "log_model": bool(config.get("log_model"))},
        )  # fmt: skip
        return super().instantiate_trainer(**settings, **kwargs)


def _default_name(model) -> str:
    hparams = getattr(model, "hparams", {})
    return str(hparams.get("model", type(model).__name__)).replace(":", "-").replace("/", "-")
