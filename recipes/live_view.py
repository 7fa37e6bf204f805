"""One live view of a pipeline on a terminal: a line per stage, redrawn from the stage folders as they fill.

Stages run in other processes (recipes/lineage/pool.py) or on other ranks, so the view reads what they leave on
disk rather than listening to them: ``stage.json`` once a stage starts, ``progress.json`` while it trains
(:class:`bridge.lit.callbacks.ProgressFile`), ``result.json`` when it is done, and the same for the evaluations
inside a policy's folder. Off a terminal (a log file, CI) it shows nothing: the stages announce themselves instead.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bridge.lit.callbacks import ProgressFile
from recipes.resumable import CONFIG, RESULT


def read(path: Path) -> Any | None:
    """A JSON file another process may be rewriting: None while it is absent or half-written."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def success(result: Any) -> str:
    """The policy's (or the expert's) closed-loop success in an evaluation result, as a percentage."""
    conditions = result.get("conditions", {}) if isinstance(result, dict) else {}
    condition = conditions.get("policy") or conditions.get("expert")
    return f"{condition['success_rate']:.0%}" if condition and "success_rate" in condition else ""


def stage_row(folder: Path) -> list[str]:
    """What, seed, step/steps, result, time left and state of one stage folder."""
    what, _, seed = folder.name.rpartition("-seed")
    if not what:
        what, seed = folder.name, ""
    progress = read(folder / ProgressFile.NAME) or {}
    step, steps, seconds = progress.get("step", 0), progress.get("steps"), progress.get("seconds", 0.0)
    result = read(folder / RESULT)
    evaluations = sorted(folder.glob("eval*/" + CONFIG))
    evaluated = [p.parent for p in evaluations if (p.parent / RESULT).is_file()]
    if result is not None and evaluations and len(evaluated) < len(evaluations):
        state = f"evaluating {len(evaluated) + 1}/{len(evaluations)}"
    elif isinstance(result, dict) and "curve" in result and not evaluations:
        state = "trained"
    elif result is not None:
        state = "done"
    else:
        state = "training" if progress else "starting"
    if isinstance(result, dict) and "val_acc" in result:
        outcome = f"accuracy {result['val_acc']:.0%}"
    else:
        latest = max(evaluated, key=lambda p: p.stat().st_mtime, default=None)
        outcome = success(read(latest / RESULT)) if latest else success(result)
    left = ""
    if state == "training" and steps and step:
        left = minutes(seconds / step * (steps - step))
    count = f"{step}/{steps}" if steps else ""
    return [what, seed, count, outcome, left, state]


class LiveView:
    """``with LiveView(out, title):`` shows every stage under ``out`` while the block runs, on a terminal only.

    Its console writes to a copy of the terminal's descriptor, taken on entry, so stages that send their own
    output to a log file (:func:`recipes.resumable.output_to`) in this very process do not take the view with it.
    """

    def __init__(self, out: Path, title: str, enabled: bool = True) -> None:
        self.out, self.title = out, title
        self.enabled = enabled and Console().is_terminal
        self.started = time.perf_counter()
        self._live: Live | None = None

    def table(self) -> Table:
        elapsed = minutes(time.perf_counter() - self.started)
        table = Table(title=f"{self.title}  ({elapsed} elapsed)", title_justify="left")
        for column in ("stage", "seed", "step", "result", "time left", "state"):
            table.add_column(column, justify="left" if column in ("stage", "state") else "right")
        for config in sorted(self.out.glob("*/" + CONFIG), key=lambda p: p.stat().st_mtime):
            table.add_row(*stage_row(config.parent))
        return table

    def __enter__(self) -> LiveView:
        if self.enabled:
            console = Console(file=os.fdopen(os.dup(1), "w"), force_terminal=True)
            self._live = Live(get_renderable=self.table, console=console, refresh_per_second=2,
                              redirect_stdout=False, redirect_stderr=False)  # fmt: skip
            self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.stop()
            self._live.console.file.close()
