"""Resumable pipeline stages: a stage whose result is on disk for the same configuration is skipped.

Each stage owns a folder ``<out>/<name>/`` holding ``stage.json`` (the configuration it runs with) and,
once finished, ``result.json``. Rerunning the pipeline reads finished results back instead of training
again; an interrupted stage is handed its ``checkpoints/last.ckpt`` to resume from. A folder that was
run with another configuration is refused rather than overwritten, so no finished work is lost.

Under DDP every rank runs every stage (the Trainer keeps them in step); only rank 0 writes the files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.errors import ConfigError
from recipes.kit import is_global_zero

RESULT, CONFIG = "result.json", "stage.json"


class StageConfigError(ConfigError):
    """A stage folder holds the work of another configuration."""


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file, then a rename): a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def run_stage(
    out: Path, name: str, config: dict, work: Callable[[Path, str | None], dict], cheap: bool = False
) -> dict:
    """Run ``work(folder, resume_from)`` once for this ``config``, or return the result it stored before.

    ``resume_from`` is the stage's ``checkpoints/last.ckpt`` when an earlier attempt left one, else None.
    A ``cheap`` stage (an evaluation: no training to lose) is simply run again when its configuration changed.
    """
    folder = out / name
    config = json.loads(json.dumps(config))  # tuples become lists, as they come back from disk
    if (folder / CONFIG).exists():
        saved = json.loads((folder / CONFIG).read_text())
        if saved != config and cheap:
            (folder / RESULT).unlink(missing_ok=True)
        elif saved != config:
            changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
            raise StageConfigError(
                f"stage {name!r} in {folder} was run with another configuration (differs in: {', '.join(changed)}); "
                "pass another --out to keep both, or delete the folder to run it again"
            )
        if (folder / RESULT).exists():
            print(f"--- {name}: done before, reading {folder / RESULT}", flush=True)
            return json.loads((folder / RESULT).read_text())
    last = folder / "checkpoints" / "last.ckpt"
    resume = str(last) if last.exists() else None
    print(f"\n=== {name}" + (f" (resuming from {last})" if resume else "") + " ===", flush=True)
    if is_global_zero():
        write_json(folder / CONFIG, config)
    result = work(folder, resume)
    if is_global_zero():
        write_json(folder / RESULT, result)
    return result
