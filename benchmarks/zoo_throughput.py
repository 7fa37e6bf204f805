"""Throughput of each zoo model against its timm / torchvision twin, in one process.

For every registered model with a twin, both networks get the same weights (``import_weights``), the same
input batch and the same number of threads, and are timed in two modes:

* ``train``: forward, cross-entropy, backward and an SGD step (``zero_grad(set_to_none=True)``);
* ``infer``: forward in eval mode under ``torch.inference_mode()``.

The report gives the median images/s of ours and of the twin and their ratio (target: ours/twin >= 0.97),
with the interquartile range of the per-round ratios so the noise is visible next to the result.

Run it with::

    python benchmarks/zoo_throughput.py                          # every model with a twin
    python benchmarks/zoo_throughput.py --models 'resnet*' --rounds 20 --out zoo_throughput.md

The default input is small (96 px) so that the whole zoo takes about half an hour on one core of a busy
2-core machine; the ViTs are built for it on both sides (``img_size``), the CNNs take any size.
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

from bridge.models import create_model, import_weights, list_models, model_info
from bridge.models.twins import create_twin

TARGET = 0.97
MODES = ("train", "infer")
FIXED_SIZE_FAMILIES = {"vit"}  # built for one input size: both sides need img_size

console = Console(width=None if sys.stdout.isatty() else 150)  # a log file gets the full table, not 80 columns


@dataclass
class Result:
    model: str
    twin: str
    mode: str
    ours: list[float]  # images/s, one sample per round
    theirs: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.theirs)

    @property
    def round_ratios_iqr(self) -> tuple[float, float]:
        # Ours and the twin of one round ran seconds apart, so their ratio cancels slow drifts in machine
        # load; the spread of these paired ratios is the noise floor of the median ratio above.
        ratios = [o / t for o, t in zip(self.ours, self.theirs)]
        q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
        return q1, q3

    @property
    def verdict(self) -> str:
        """``ok`` at or above target; ``below`` if even the upper quartile of round ratios misses it; else ``noisy``."""
        if self.ratio >= TARGET:
            return "ok"
        return "below" if self.round_ratios_iqr[1] < TARGET else "noisy"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["*"], help="shell patterns over models with a twin")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=96, help="input H = W (a multiple of 16 for the ViTs)")
    parser.add_argument("--rounds", type=int, default=7, help="timed samples per model, mode and side")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model, mode and side")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds of whole steps per timed sample")
    # One thread by default: on a shared machine every OpenMP barrier waits for the most descheduled thread,
    # which makes multi-threaded timings slower and far noisier. Both sides always get the same count.
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for both sides")
    parser.add_argument("--out", type=Path, help="also write the table here as Markdown")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the spread needs two samples)")
    return args


def warn_if_busy(threads: int) -> None:
    """Say so when other processes already use the cores: OpenMP threads then wait on each other at every op."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load + threads > cores + 0.5:
        console.print(
            f"[yellow]load average {load:.1f} on {cores} cores before adding --threads {threads}: the CPU is "
            "oversubscribed, timings will be slow and noisy; fewer threads suffer less[/yellow]"
        )


def models_with_twin(patterns: list[str]) -> list[str]:
    names = [n for n in list_models() if model_info(n).twin is not None]
    selected = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]
    if not selected:
        raise SystemExit(f"no model with a twin matches {patterns}; choose from {', '.join(names)}")
    return selected


def build_pair(name: str, img_size: int) -> tuple[nn.Module, nn.Module]:
    """Ours and the twin at the same input size, ours holding the twin's weights (outputs match)."""
    kwargs = {"img_size": img_size} if model_info(name).family in FIXED_SIZE_FAMILIES else {}
    twin = create_twin(name, **kwargs)
    ours = import_weights(create_model(name, **kwargs), twin)
    return ours, twin


def check_same_function(ours: nn.Module, twin: nn.Module, x: Tensor) -> None:
    """Guard against timing two different networks: in eval mode both must give the same logits."""
    ours.eval()
    twin.eval()
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), twin(x))


def train_step(model: nn.Module, x: Tensor, y: Tensor) -> Callable[[], None]:
    model.train()
    # A small learning rate: the same batch is seen again and again and must not blow the weights up.
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def infer_step(model: nn.Module, x: Tensor) -> Callable[[], None]:
    model.eval()

    def step() -> None:
        with torch.inference_mode():
            model(x)

    return step


def images_per_second(step: Callable[[], None], batch_size: int, min_time: float) -> float:
    """Run whole steps for at least ``min_time`` seconds: one step of a small model is too short to time alone."""
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_time:
        step()
        steps += 1
    return steps * batch_size / elapsed


def interleaved(
    ours: Callable[[], None], twin: Callable[[], None], args: argparse.Namespace
) -> tuple[list[float], list[float]]:
    """Per-round images/s of both sides, alternating them so that both see the same machine.

    On a shared CPU the load, clock and cache state drift over seconds. Timing all of one model and then
    all of the other would charge that drift to one side; alternating the two, and flipping which goes
    first every round (AB BA AB ...), spreads it evenly, and the median discards the outlier rounds.
    """
    for _ in range(args.warmup):  # oneDNN primitive caches, allocator pools, lazy init
        ours()
        twin()
    samples: dict[str, list[float]] = {"ours": [], "twin": []}
    steps = {"ours": ours, "twin": twin}
    for r in range(args.rounds):
        for side in ("ours", "twin") if r % 2 == 0 else ("twin", "ours"):
            samples[side].append(images_per_second(steps[side], args.batch_size, args.min_time))
    return samples["ours"], samples["twin"]


def benchmark(name: str, args: argparse.Namespace) -> list[Result]:
    torch.manual_seed(0)
    ours, twin = build_pair(name, args.img_size)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size)
    y = torch.randint(0, ours.num_classes, (args.batch_size,))
    check_same_function(ours, twin, x)
    results = []
    for mode in MODES:
        if mode == "train":
            ours_step, twin_step = train_step(ours, x, y), train_step(twin, x, y)
        else:
            ours_step, twin_step = infer_step(ours, x), infer_step(twin, x)
        results.append(Result(name, model_info(name).twin, mode, *interleaved(ours_step, twin_step, args)))
    return results


def rows(results: list[Result]) -> list[list[str]]:
    out = []
    for r in results:
        q1, q3 = r.round_ratios_iqr
        out.append(
            [
                r.model,
                r.twin,
                r.mode,
                f"{statistics.median(r.ours):.1f}",
                f"{statistics.median(r.theirs):.1f}",
                f"{r.ratio:.3f}",
                f"{q1:.3f}-{q3:.3f}",
                r.verdict,
            ]
        )
    return out


HEADER = ["model", "twin", "mode", "ours img/s", "twin img/s", "ours/twin", "round ratio IQR", "verdict"]
STYLES = {"noisy": "yellow", "below": "bold red"}
CAPTION = (
    f"verdict: ok = ours/twin >= {TARGET}; noisy = below it, but the upper quartile of the per-round ratios "
    "reaches it; below = even that misses it"
)


def print_table(results: list[Result], title: str) -> None:
    table = Table(title=title, caption=CAPTION)
    for i, column in enumerate(HEADER):
        table.add_column(column, justify="right" if 3 <= i <= 6 else "left")
    for result, row in zip(results, rows(results)):
        table.add_row(*row, style=STYLES.get(result.verdict))
    console.print(table)


def write_markdown(path: Path, results: list[Result], title: str) -> None:
    lines = [f"# {title}", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    lines += ["", CAPTION]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    warn_if_busy(args.threads)
    # Subnormal floats are many times slower on x86; a gradient that drifts into them would time the FPU,
    # not the model.
    torch.set_flush_denormal(True)
    title = (
        f"images/s, ours vs twin: batch {args.batch_size}, {args.img_size}px, {args.threads} threads, "
        f"median of {args.rounds} rounds, torch {torch.__version__}"
    )
    start = time.perf_counter()
    results: list[Result] = []
    for name in models_with_twin(args.models):
        model_start = time.perf_counter()
        results += benchmark(name, args)
        ratios = ", ".join(f"{r.mode} {r.ratio:.3f}" for r in results[-len(MODES) :])
        console.log(f"{name}: {ratios} ({time.perf_counter() - model_start:.0f} s)")
        if args.out:  # after every model, so that an interrupted run keeps what it measured
            write_markdown(args.out, results, title)
        gc.collect()  # the previous pair (and its optimizer state) must not crowd the next one's memory
    print_table(results, title)
    worst = min(results, key=lambda r: r.ratio)
    console.print(
        f"min ours/twin {worst.ratio:.3f} ({worst.model} {worst.mode}); target {TARGET}; "
        f"wall time {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
