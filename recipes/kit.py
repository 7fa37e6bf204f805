"""What every recipe shares: its command line (``--trainer.*`` included), its Trainers, and rank zero.

``--trainer.<setting>`` takes any argument of ``lightning.Trainer``, parsed by jsonargparse from the Trainer's
signature exactly as ``python -m bridge fit`` parses it. A recipe chooses its own Trainer settings per stage
(epochs, steps, logging); a setting given on the command line overrides them in every stage.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from jsonargparse import ArgumentParser, Namespace
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from bridge.errors import ConfigError
from bridge.lit.trainer import build_trainer
from bridge.tracking import wandb_settings

# Set by the recipe for each stage (see bridge.lit.trainer.run_settings), so not on the command line.
STAGE_SETTINGS = {"default_root_dir", "logger", "callbacks"}


def recipe_parser(name: str, doc: str | None, **kwargs) -> ArgumentParser:
    """The parser of ``python -m bridge run <name>``: the recipe adds its own options, then calls :func:`parse`."""
    parser = ArgumentParser(
        prog=f"python -m bridge run {name}", usage=f"python -m bridge run {name} [options] [--trainer.<setting> VALUE]",
        description=doc.strip().splitlines()[0] if doc else None, **kwargs,
    )  # fmt: skip
    parser.add_class_arguments(
        L.Trainer, "trainer", fail_untyped=False, instantiate=False, sub_configs=True, skip=STAGE_SETTINGS
    )
    return parser


def parse(parser: ArgumentParser, argv: list[str] | None) -> Namespace:
    """Parse ``argv``. ``args.trainer`` is then the dict of the ``--trainer.*`` settings given (classes built),
    ``args.trainer_config`` the same as plain values, for a stage's recorded configuration."""
    args = parser.parse_args(argv)
    wandb_settings()  # WANDB_MODE=online without a key (or a mode wandb does not have): said before any work
    for key, value in vars(args).items():
        if key != "trainer":
            setattr(args, key, _plain(value))
    defaults = parser.get_defaults().trainer.as_dict()
    given = {k: v for k, v in args.trainer.as_dict().items() if v != defaults.get(k)}
    built = parser.instantiate_classes(args).trainer
    args.trainer, args.trainer_config = {k: built[k] for k in given}, given
    return args


def _plain(value):
    """jsonargparse's ``PositiveInt`` and kin as the built-in int or float they hold: checkpoints that record
    them must load with ``weights_only=True``, which refuses any class it does not know."""
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def trainer(root: str | Path, name: str, group: str | None, given: dict, **settings) -> L.Trainer:
    """:func:`bridge.lit.trainer.build_trainer` with the recipe's ``settings`` (``wandb_run`` among them), and the
    command line's ``--trainer.*`` settings (``given``, from :func:`parse`) on top."""
    return build_trainer(root, name, group, **{**settings, **given})


def finish(trainer: L.Trainer) -> None:
    """End the trainer's W&B run, so the next model or stage of the recipe gets a run of its own."""
    if trainer.is_global_zero and isinstance(trainer.logger, WandbLogger):
        trainer.logger.experiment.finish()


def out_folder(path: str | Path) -> Path:
    """``--out`` as a folder, refused up front (before any training) when it, or a folder it would be made in,
    is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path} is a file, not a folder; choose another --out")
    # The nearest part that exists must be a folder: under a file, mkdir fails only once the work is done.
    existing = next((p for p in path.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"--out {path}: {existing} is a file, not a folder; choose another --out")
    return path


def is_global_zero() -> bool:
    """True in the process that writes files: rank 0 of a DDP run, or the only process (rank from the launcher)."""
    return rank_zero_only.rank == 0
