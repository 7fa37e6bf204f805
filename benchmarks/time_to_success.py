"""Closed-loop success against wall-clock time: the project's policy, trained as users train it, beside a lean loop.

The project's side is a fit config (the Trainer, the DataModule and VLAPolicy built by the same LightningCLI as
``python -m bridge fit --config ...``); the reference is benchmarks/lean_loop.py, BabyAI 1.1's pixel FiLM network
in plain PyTorch. For each seed both train at the same time, in two processes of one torch thread each, for the
same wall-clock budget, on the same demonstrations, and keep a copy of their weights at the same fractions of the
budget. Every copy is then judged on the same evaluation episodes. Printed: success at each of those points with
the steps and training FLOPs behind it (``torch.utils.flop_counter``, one step counted), the paired difference
over seeds and episodes, and each side's time to a success (interpolated between points) with the ratio.

    python benchmarks/time_to_success.py --config configs/vla_resnet.yaml --seconds 240
    python benchmarks/time_to_success.py --config configs/vla_babyai_gotolocal.yaml --seconds 900 --eval-episodes 500
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from lightning.pytorch.callbacks import Callback
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # lean_loop.py beside it, when run as a script

from lean_loop import LeanLoop  # noqa: E402

from bridge.analysis.bootstrap import compare, interval  # noqa: E402
from bridge.errors import BridgeError  # noqa: E402
from bridge.lit.lightning_cli import BridgeCLI  # noqa: E402
from bridge.vla.evaluation.closed_loop import evaluate  # noqa: E402
from bridge.vla.worlds import World  # noqa: E402
from recipes.lineage.pool import stage_pool  # noqa: E402
from recipes.lineage.report_data import cpu_name  # noqa: E402

SIDES = ("bridge", "lean")
# BridgeCLI(args=...) is given this script's whole command line; LightningCLI warns when sys.argv holds one too.
warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")


@dataclass
class Point:
    """One copy of the weights: when it was taken, after how much training, and how it did."""

    seconds: float
    steps: int
    flops: float
    success: list[int] = field(default_factory=list)  # per evaluation episode


class Stopwatch:
    """A clock of training time only, and a copy of the weights at each of the budget's marks (``seconds * k /
    points``): copying is not training, so its time is paused out."""

    def __init__(self, seconds: float, points: int) -> None:
        self.marks = [seconds * k / points for k in range(1, points + 1)]
        self.points, self.weights, self.step_flops = [], [], 0
        self.start, self.paused = time.perf_counter(), 0.0

    def tick(self, model, step: int) -> bool:
        """Copy ``model`` at every mark passed; whether marks remain (the budget is not spent)."""
        elapsed = time.perf_counter() - self.start - self.paused
        while self.marks and elapsed >= self.marks[0]:
            self.keep(model, step, elapsed)
        return bool(self.marks)

    def finish(self, model, step: int) -> None:
        """Training ended before the budget: at the marks still ahead the model is the finished one, as a user
        would have it."""
        while self.marks:
            self.keep(model, step, self.marks[0])

    def keep(self, model, step: int, seconds: float) -> None:
        began = time.perf_counter()
        self.marks.pop(0)
        self.points.append(Point(seconds, step, step * self.step_flops))
        self.weights.append(copy.deepcopy(model.state_dict()))
        self.paused += time.perf_counter() - began

    def judged(self, model, agent, world: World, spec: dict) -> list[Point]:
        """The points, each copy loaded into ``model`` and its ``agent`` judged on the same evaluation episodes."""
        for point, state in zip(self.points, self.weights):
            model.load_state_dict(state)
            point.success = judge(agent, world, spec)
        return self.points


class Clock(Callback):
    """A Stopwatch on a Trainer: it starts with training, stops the Trainer when the budget is spent, and counts the
    first step's FLOPs."""

    def __init__(self, seconds: float, points: int) -> None:
        self.seconds, self.points, self.counter = seconds, points, None

    def on_train_start(self, trainer, module) -> None:
        self.watch = Stopwatch(self.seconds, self.points)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == 0 and self.counter is None:
            self.counter = FlopCounterMode(display=False)
            self.counter.__enter__()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.counter is not None and not self.watch.step_flops:
            self.counter.__exit__(None, None, None)
            self.watch.step_flops = self.counter.get_total_flops()
        if not self.watch.tick(module.policy, trainer.global_step):
            trainer.should_stop = True

    def on_train_end(self, trainer, module) -> None:
        self.watch.finish(module.policy, trainer.global_step)


def cli_args(config: str, seed: int, root: str, demos: str | None, episodes: int | None, steps: int | None) -> list:
    args = ["--config", config, "--seed_everything", str(seed), "--trainer.default_root_dir", root,
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.max_time", "null"]  # fmt: skip
    args += ["--data.init_args.path", demos] if demos else []
    args += ["--data.init_args.episodes", str(episodes)] if episodes else []
    return args + (["--trainer.max_steps", str(steps)] if steps else [])


def train_bridge(spec: dict, seed: int) -> list[Point]:
    """The config's run, as ``python -m bridge fit`` builds it, on the clock; then each copy evaluated."""
    with tempfile.TemporaryDirectory() as root:
        cli = BridgeCLI(args=cli_args(spec["config"], seed, root, spec["demos"], spec["episodes"], spec["steps"]),
                        run=False)  # fmt: skip
        clock = Clock(spec["seconds"], spec["points"])
        cli.trainer.callbacks.append(clock)
        cli.trainer.fit(cli.model, cli.datamodule)
    policy = cli.model.policy
    return clock.watch.judged(policy, policy.as_agent(), cli.datamodule.world, spec)


def train_lean(spec: dict, seed: int, world: World) -> list[Point]:
    loop = LeanLoop(spec["demos"], world, seed, spec["lean_batch"], spec["lean_lr"], spec["lean_width"])
    with FlopCounterMode(display=False) as counter:
        loop.step()
    watch, steps = Stopwatch(spec["seconds"], spec["points"]), 1
    watch.step_flops = counter.get_total_flops()
    while True:
        loop.step()
        steps += 1
        if not watch.tick(loop.model, steps):
            return watch.judged(loop.model, loop.act, world, spec)


def judge(agent, world: World, spec: dict) -> list[int]:
    """Success on each of the same evaluation episodes (the world's evaluation seeds), 0 or 1."""
    result, _ = evaluate(agent, world, episodes=spec["eval_episodes"], seeds=1, conditions=("policy",), progress=False)
    return result.conditions["policy"].episode_success


def run(side: str, spec: dict, seed: int, world: World | None = None) -> list[dict]:
    """One side's run in a worker process (one torch thread): its points as plain data."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no banner of devices and tips per run
    points = train_bridge(spec, seed) if side == "bridge" else train_lean(spec, seed, world)
    return [asdict(p) for p in points]


def prepare(spec: dict) -> tuple[World, str]:
    """The config's world and its demo set, collected here once (the DataModule's prepare_data) when absent."""
    with tempfile.TemporaryDirectory() as root:
        cli = BridgeCLI(args=cli_args(spec["config"], 0, root, spec["demos"], spec["episodes"], None), run=False)
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")  # a demo set that does not fit the config is refused here, not in both workers
    return cli.datamodule.world, str(cli.datamodule.path)


def time_to(points: list[dict], target: float) -> float:
    """Seconds until success first reaches ``target``, linear between points; NaN when it never does."""
    previous = (0.0, 0.0)
    for p in points:
        rate = float(np.mean(p["success"]))
        if rate >= target:
            (t0, s0), t1 = previous, p["seconds"]
            return t1 if rate == s0 else t0 + (t1 - t0) * (target - s0) / (rate - s0)
        previous = (p["seconds"], rate)
    return math.nan


def report(runs: dict[str, list[list[dict]]], targets: list[float], title: str) -> None:
    """Printed tables: success at each point on both sides, then the time to each target."""
    console = Console(width=180)  # the tables are wide: no wrapping in a log file
    points = Table(title=title)
    for column in ("point", "seconds", "bridge steps", "bridge TFLOP", "bridge success [95% CI]", "lean steps",
                   "lean TFLOP", "lean success [95% CI]", "bridge - lean [95% CI]"):  # fmt: skip
        points.add_column(column, justify="right")
    for k in range(len(runs["bridge"][0])):
        scores = {s: np.array([seed[k]["success"] for seed in runs[s]]) for s in SIDES}
        mean = {s: {key: np.mean([seed[k][key] for seed in runs[s]]) for key in ("seconds", "steps", "flops")}
                for s in SIDES}  # fmt: skip
        shown = {s: interval(scores[s]) for s in SIDES}
        diff = compare("bridge", scores["bridge"], "lean", scores["lean"])
        d = diff.difference
        points.add_row(
            str(k + 1), f"{mean['bridge']['seconds']:.0f}",
            *[cell for s in SIDES for cell in (f"{mean[s]['steps']:.0f}", f"{mean[s]['flops'] / 1e12:.1f}",
              f"{shown[s].mean:.1%} [{shown[s].low:.1%}, {shown[s].high:.1%}]")],
            f"{d.mean:+.1%} [{d.low:+.1%}, {d.high:+.1%}] {diff.verdict}",
        )  # fmt: skip
    console.print(points)
    times = Table(title="seconds to reach a success (mean over seeds; how many seeds reached it)")
    for column in ("success", "bridge s", "lean s", "bridge / lean, per seed"):
        times.add_column(column, justify="right")
    for target in targets:
        each = {s: [time_to(seed, target) for seed in runs[s]] for s in SIDES}
        cells = [f"{np.nanmean(each[s]):.0f} ({sum(not math.isnan(t) for t in each[s])}/{len(each[s])})"
                 if any(not math.isnan(t) for t in each[s]) else "never" for s in SIDES]  # fmt: skip
        ratios = ", ".join("-" if math.isnan(b / n) else f"{b / n:.2f}" for b, n in zip(each["bridge"], each["lean"]))
        times.add_row(f"{target:.1%}", *cells, ratios)
    console.print(times)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/vla_resnet.yaml", help="the project's side: a fit config")
    parser.add_argument("--demos", help="the demo set (default: the config's data path; collected there if absent)")
    parser.add_argument("--episodes", type=int, help="demos to collect; a set at --demos holds as many")
    parser.add_argument("--steps", type=int, help="the project's max_steps (its schedule's length)")
    parser.add_argument("--seconds", type=float, default=240.0, help="each run's training budget, wall-clock")
    parser.add_argument("--points", type=int, default=6, help="copies of the weights judged along the budget")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds (0, 1, ...), each side by side")
    parser.add_argument("--eval-episodes", type=int, default=100, help="evaluation episodes, the same for every copy")
    parser.add_argument("--targets", type=float, nargs="*", default=[0.9, 0.95], help="successes to time, besides "
                        "the lean loop's last")  # fmt: skip
    parser.add_argument("--lean-batch", type=int, default=256)
    parser.add_argument("--lean-lr", type=float, default=1e-3)
    parser.add_argument("--lean-width", type=int, default=128)
    parser.add_argument("--out", type=Path, help="a JSON file for every point of every run")
    args = parser.parse_args(argv)
    for name in ("seconds", "points", "seeds", "eval_episodes", "lean_batch", "lean_width", "lean_lr", "steps",
                 "episodes"):  # fmt: skip
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be above 0, got {getattr(args, name)}")
    if not Path(args.config).is_file():
        parser.error(f"--config {args.config}: no such file; e.g. configs/vla_resnet.yaml")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    spec = {key: value for key, value in vars(args).items() if key not in ("out", "targets")}
    try:
        world, spec["demos"] = prepare(spec)
    except BridgeError as err:
        raise SystemExit(f"error: {err}") from None
    runs: dict[str, list] = {s: [] for s in SIDES}
    print(f"{args.seeds} seeds x 2 sides of {args.seconds:.0f} s, two at a time, each then judged at {args.points} "
          f"points: at least {args.seeds * args.seconds / 60:.0f} minutes", flush=True)  # fmt: skip
    with stage_pool(2) as pool:  # the two sides of a seed at the same time, one torch thread each
        futures = [(s, seed, pool.submit(run, s, spec, seed, world)) for seed in range(args.seeds) for s in SIDES]
        for side, seed, future in futures:
            runs[side].append(future.result())
            curve = ", ".join(f"{np.mean(p['success']):.0%}" for p in runs[side][-1])
            print(f"{side} seed {seed}: {runs[side][-1][-1]['steps']} steps; success along the budget {curve}")
    last = float(np.mean([seed[-1]["success"] for seed in runs["lean"]]))
    title = (f"{Path(args.config).stem}, {world.name}, {args.seconds:.0f} s a run, {args.seeds} seeds, "
             f"{args.eval_episodes} episodes, one thread a side, {cpu_name()}")  # fmt: skip
    report(runs, [*args.targets, last], title)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"spec": spec, "cpu": cpu_name(), "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
