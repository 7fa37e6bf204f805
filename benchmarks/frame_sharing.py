"""A training step of a frame-history policy, batches by frame against batches by episode, in one process.

With the last k frames as input, neighbouring steps of an episode share k - 1 frames. A batch of frames
drawn at random encodes each of its samples' k frames (``batch_by="frame"``); a batch cut from whole
episodes holds each distinct frame once and the policy encodes it once (``batch_by="episode"``). Both
sides train the same policy (configs/vla_babyai_gotolocal.yaml's, built from one seed) on the same demos
with the same threads; rounds alternate between them so that the machine's load falls on both alike. The
report gives the median milliseconds per step (data, forward, backward, AdamW step), the frames encoded per
step, and the ratio frame / episode with the interquartile range of the per-round ratios.

Run it with::

    python benchmarks/frame_sharing.py                      # collects 1,000 GoToLocal demos in a temp folder
    python benchmarks/frame_sharing.py --demos runs/demos/babyai_gotolocal_20000_k3 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from bridge.errors import BridgeError
from bridge.vla.demos import DemoDataModule, collect_demos, load_demos, save_demos
from bridge.vla.policy.configuration import PolicyConfig
from bridge.vla.policy.modeling import Policy
from bridge.vla.worlds import get_world

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "vla_babyai_gotolocal.yaml"
MODES = ("frame", "episode")


def time_steps(
    policy: Policy, optimizer: torch.optim.Optimizer, batches, steps: int, bf16: bool = False
) -> tuple[float, float]:
    """Median seconds per training step over ``steps`` steps, and the mean frames encoded per step.

    ``bf16`` runs the forward pass under bfloat16 autocast, as Lightning's ``precision="bf16-mixed"`` does on the
    CPU (the backward pass and the optimiser stay outside it)."""
    times, frames = [], []
    for _ in range(steps):
        start = time.perf_counter()
        batch = next(batches)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = policy.compute_loss(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
        images = batch["observation.image"]
        frames.append(images.shape[0] * (images.shape[1] if images.ndim == 5 else 1))
    return statistics.median(times), statistics.mean(frames)


def endless(datamodule: DemoDataModule):
    while True:
        yield from datamodule.train_dataloader()


def demos_path(demos: str | None, data: dict, tmp: str) -> str:
    """The demo set given, or 1,000 episodes of the config's level collected into ``tmp``."""
    if demos is not None:
        return demos
    dataset, meta = collect_demos(get_world(data["world"], **data["world_options"]), 1000)
    return str(save_demos(dataset, meta, Path(tmp) / "demos"))


def timing_parser(description: str) -> argparse.ArgumentParser:
    """The options of a benchmark that times policy steps: the demos, the rounds, the steps, the threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--demos", help="a GoToLocal demo set with n_obs_steps 3 (default: collect 1,000 episodes)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds per side")
    parser.add_argument("--steps", type=int, default=10, help="training steps timed per round")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    return parser


def run(main: Callable[[], None]) -> None:
    """Run a benchmark: a bad input (no demo set there, an unknown encoder) ends as one line that names the fix."""
    try:
        main()
    except BridgeError as err:
        raise SystemExit(f"error: {err}") from None


def main() -> None:
    parser = timing_parser(__doc__.split("\n\n")[0])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(CONFIG.read_text())
    data = config["data"]["init_args"]
    with tempfile.TemporaryDirectory() as tmp:
        path = demos_path(args.demos, data, tmp)
        meta = {"world": data["world"], **load_demos(path)[1]}  # a set LeRobot wrote: the config names its world
        loaders, policies = {}, {}
        for mode in MODES:
            dm = DemoDataModule(
                path=path, world=meta["world"], episodes=None, world_options=data["world_options"], val_fraction=0,
                batch_size=data["batch_size"], batch_by=mode,
            )  # fmt: skip
            dm.setup("fit")
            torch.manual_seed(0)
            policy = Policy(PolicyConfig(**config["model"]["init_args"]["policy"]))
            policy.set_stats(dm.stats)
            optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
            loaders[mode], policies[mode] = endless(dm), (policy.train(), optimizer)
        for mode in MODES:  # warm-up: first calls allocate
            time_steps(*policies[mode], loaders[mode], 2)
        seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
        frames: dict[str, float] = {}
        for _ in range(args.rounds):
            for mode in MODES:
                step, frames[mode] = time_steps(*policies[mode], loaders[mode], args.steps)
                seconds[mode].append(step)
    ratios = sorted(f / e for f, e in zip(seconds["frame"], seconds["episode"]))
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    setting = f"batch {data['batch_size']}, {args.threads} threads, {args.rounds} rounds x {args.steps} steps"
    print(f"{meta['world']}, {setting}")
    for mode in MODES:
        print(
            f"  by {mode:<8} {1000 * statistics.median(seconds[mode]):6.1f} ms/step, {frames[mode]:.0f} frames encoded"
        )
    print(f"  frame / episode: {statistics.median(ratios):.2f} (IQR {q1:.2f}-{q3:.2f})")


if __name__ == "__main__":
    run(main)
