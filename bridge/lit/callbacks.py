"""Small callbacks: a last.ckpt that is never far behind, the checkpoint paths in W&B, predictions on disk, and
a run's progress in a file that another process can read."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback, ModelCheckpoint
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
        # The whole state, to resume from (Lightning's default, but said: otherwise it warns at every save).
        trainer.save_checkpoint(path, weights_only=False)


class ResumeHint(Callback):
    """After Ctrl-C during ``fit``, one line on how to go on (Lightning stops cleanly but only says so)."""

    def __init__(self, root: str | Path) -> None:
        self.last = Path(root) / "checkpoints" / "last.ckpt"

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or not trainer.is_global_zero:
            return
        if self.last.is_file():
            hint = f"{self.last} holds the last saved step; resume with the same command and --ckpt_path last"
        else:
            hint = "no checkpoint was written yet; run the same command again"
        print(f"interrupted (Ctrl-C): {hint}", file=sys.stderr)


class PredictionWriter(BasePredictionWriter):
    """``predict`` writes ``<run dir>/predictions.csv``: each input's index, predicted class and its probability.

    Outputs that are not (batch, classes) probabilities are saved as they are, in ``predictions.pt``. Under DDP
    each process writes the inputs it was given, in ``predictions-rank<N>.csv``.
    """

    def __init__(self, root: str | Path) -> None:
        super().__init__(write_interval="epoch")
        self.root = Path(root)

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions, batch_indices) -> None:
        if predictions and isinstance(predictions[0], list):  # several dataloaders: one list each
            predictions = sum(predictions, [])
        suffix = f"-rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        self.root.mkdir(parents=True, exist_ok=True)
        if not all(isinstance(p, torch.Tensor) and p.ndim == 2 for p in predictions):
            path = self.root / f"predictions{suffix}.pt"
            torch.save(predictions, path)
            print(f"predictions of {len(predictions)} batches -> {path}")
            return
        probs = torch.cat(predictions).float().cpu() if predictions else torch.empty(0, 0)
        indices = list(_flatten(batch_indices)) or list(range(len(probs)))  # nested per dataloader, then batch
        names = getattr(trainer.datamodule, "class_names", None)
        rows = ["index,prediction,confidence"]
        for index, p in sorted(zip(indices, probs), key=lambda row: row[0]):
            confidence, label = p.max(dim=0)
            rows.append(f"{index},{names[label] if names else int(label)},{float(confidence):.4f}")
        path = self.root / f"predictions{suffix}.csv"
        path.write_text("\n".join(rows) + "\n")
        print(f"{len(probs)} predictions -> {path}")


def _flatten(items):
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        else:
            yield int(item)


class ProgressFile(Callback):
    """``progress.json`` in the run folder, rewritten at most every ``every`` seconds while training: the step,
    the steps the run will take and the training seconds so far (a pipeline's live view reads it)."""

    NAME = "progress.json"

    def __init__(self, every: float = 1.0) -> None:
        self.every, self.started, self.written = every, 0.0, 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.perf_counter() - self._seconds(trainer)  # a resumed run goes on counting
        self._write(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if time.perf_counter() - self.written >= self.every:
            self._write(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer)

    def _seconds(self, trainer: L.Trainer) -> float:
        path = Path(trainer.default_root_dir) / self.NAME
        try:
            return float(json.loads(path.read_text())["seconds"]) if trainer.global_step else 0.0
        except (OSError, ValueError, KeyError):
            return 0.0

    def _write(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        self.written = time.perf_counter()
        steps = trainer.estimated_stepping_batches
        data = {"step": trainer.global_step, "steps": int(steps) if steps != float("inf") else None,
                "seconds": self.written - self.started}  # fmt: skip
        path = Path(trainer.default_root_dir) / self.NAME
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
