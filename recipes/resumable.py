"""Resumable pipeline stages: a stage whose result is on disk for the same configuration is skipped.

Each stage owns a folder ``<out>/<name>/`` holding ``stage.json`` (the configuration it runs with) and,
once finished, ``result.json``. Rerunning the pipeline reads finished results back instead of training
again; an interrupted stage is handed its ``checkpoints/last.ckpt`` to resume from. A folder that was
run with another configuration is refused rather than overwritten, so no finished work is lost.

Under DDP every rank runs every stage (the Trainer keeps them in step); only rank 0 writes the files.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bridge.errors import ConfigError, CorruptFileError
from bridge.lit.checkpoints import check_checkpoint
from bridge.runs import check_folder_path, folder_kind, is_empty, mark_folder
from recipes.kit import is_global_zero

RESULT, CONFIG, LOG = "result.json", "stage.json", "log.txt"


class StageConfigError(ConfigError):
    """A stage folder holds the work of another configuration."""


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file, then a rename): a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def run_stage(
    out: Path, name: str, config: dict, work: Callable[[Path, str | None], dict], cheap: bool = False,
    quiet: bool = False, announce: bool = True, keys: tuple[str, ...] = (),
) -> dict:  # fmt: skip
    """Run ``work(folder, resume_from)`` once for this ``config``, or return the result it stored before.

    ``resume_from`` is the stage's ``checkpoints/last.ckpt`` when an earlier attempt left one, else None.
    A ``cheap`` stage (an evaluation: no training to lose) is simply run again when its configuration changed.
    A damaged record (a truncated ``result.json``, or a result whose checkpoint is missing or truncated) is
    said so and the stage runs again, from its ``last.ckpt`` when there is one; so is a result that is not a JSON
    object holding ``keys`` (what the caller reads of it). A ``stage.json`` that cannot be read is refused for a
    stage that trains (its ``last.ckpt`` may be of any configuration), as is a ``last.ckpt`` that does not load
    safely (``weights_only=True``). ``quiet``: everything the work
    prints (Lightning, W&B) goes to ``<folder>/log.txt`` instead; ``announce``: the stage's own lines (started,
    resumed, done before) are printed, else they go there too.
    """
    folder = out / name
    if not announce:
        folder.mkdir(parents=True, exist_ok=True)
        with output_to(folder / LOG):
            return run_stage(out, name, config, work, cheap, quiet, keys=keys)
    if quiet:
        work = functools.partial(_quietly, work)
    config = json.loads(json.dumps(config))  # tuples become lists, as they come back from disk
    saved = _load(folder / CONFIG)
    if saved is DAMAGED and not cheap:
        raise CorruptFileError(
            f"{folder / CONFIG} is damaged (unreadable JSON), so the configuration the work in {folder} was run with "
            f"is unknown; delete the folder {folder} to run stage {name!r} again, or choose another --out"
        )
    if saved is DAMAGED:  # an evaluation: nothing to lose, so it runs again as if its configuration changed
        print(f"--- {folder / CONFIG} is damaged (unreadable JSON); running its stage again", flush=True)
        saved = {}
    if saved is not None:
        if saved != config and cheap:
            (folder / RESULT).unlink(missing_ok=True)
        elif saved != config:
            changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
            raise StageConfigError(
                f"stage {name!r} in {folder} was run with another configuration (differs in: {', '.join(changed)}); "
                "pass another --out to keep both, or delete the folder to run it again"
            )
        result = read_record(folder / RESULT)
        if result is not None and intact(result, folder / RESULT, keys):
            print(f"--- {name}: done before, reading {folder / RESULT}", flush=True)
            return result
    last = folder / "checkpoints" / "last.ckpt"
    resume = str(last) if last.exists() and zipfile.is_zipfile(last) else None
    if resume:
        check_resumable(last, name)
    print(f"\n=== {name}" + (f" (resuming from {last})" if resume else "") + " ===", flush=True)
    if is_global_zero():
        write_json(folder / CONFIG, config)
    result = work(folder, resume)
    if is_global_zero():
        write_json(folder / RESULT, result)
    return result


def _quietly(work: Callable[[Path, str | None], dict], folder: Path, resume: str | None) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    with output_to(folder / LOG):
        return work(folder, resume)


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Everything this process writes to its standard output and error goes to ``path`` (appended) meanwhile.

    At the level of file descriptors as well as of ``sys.stdout``: Lightning's log handlers, tqdm and W&B's
    service hold their own references to the streams, and a child process inherits the descriptors.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)


DAMAGED = object()  # what _load returns for a file that is not readable JSON


def _load(path: Path) -> Any:
    """The JSON in ``path``: None when absent, DAMAGED when unreadable."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return DAMAGED


def read_record(path: Path) -> Any | None:
    """A stage's JSON record, or None when it is absent or damaged (said, since the stage then runs again)."""
    record = _load(path)
    if record is DAMAGED:
        print(f"--- {path} is damaged (unreadable JSON); running its stage again", flush=True)
        return None
    return record


def check_resumable(last: Path, name: str) -> None:
    """Refuse a ``last.ckpt`` that does not load safely (a planted pickle, NaN weights) before Lightning loads it."""
    try:
        check_checkpoint(last)
    except CorruptFileError as err:
        reason = str(err).split(". ")[0]  # the diagnosis; the fix for a stage's own checkpoint is to drop it
        raise CorruptFileError(
            f"stage {name!r} cannot resume: {reason}; delete {last} (or its stage folder {last.parent.parent}) to run "
            "the stage again from the start"
        ) from None


def intact(result: Any, path: Path, keys: tuple[str, ...] = ()) -> bool:
    """Whether a result is a JSON object holding ``keys``, and the checkpoint it names is there and whole (a torch
    checkpoint is a zip with checksums)."""
    missing = [key for key in keys if key not in result] if isinstance(result, dict) else None
    if not result or missing is None or missing:
        what = f"lacks {', '.join(missing)}" if missing else "holds no result"
        print(f"--- {path} {what}; running its stage again", flush=True)
        return False
    checkpoint = result.get("checkpoint")
    if checkpoint is None:
        return True
    path = Path(checkpoint)
    try:
        whole = zipfile.is_zipfile(path) and zipfile.ZipFile(path).testzip() is None
    except (OSError, zipfile.BadZipFile):
        whole = False
    if not whole:
        print(f"--- {path} is missing or damaged; running its stage again", flush=True)
    return whole


def claim_folder(out: Path, kind: str) -> None:
    """Make ``out`` a ``kind`` pipeline's folder, or refuse: it must be new, empty, or already one."""
    check_folder_path(out, "--out")
    if out.is_dir() and folder_kind(out) != kind and not is_empty(out):
        what = f"bridge's {folder_kind(out)} output" if folder_kind(out) else "files bridge did not write"
        raise ConfigError(f"--out {out} already holds {what}; choose another --out for the {kind} pipeline")
    if is_global_zero():
        mark_folder(out, kind)
