"""Where a policy's training step goes, against what this core can do.

For the lineage's Reach policy (the tiny preset's arms) it times, on the same batches and one thread:

* the parts of a step, each alone: the batch (the DataLoader), the instruction encoder, the image encoder
  (forward and backward), the whole loss forward and backward (trunk, head and loss are what is left), the
  optimiser step;
* the same steps through Lightning's Trainer (the way users train), so its overhead, logging and metrics
  included, is the difference;
* the core's ceiling: a large float32 matmul and the encoder's own convolutions, timed in the same run, and the
  step's achieved GFLOP/s (FLOPs from ``torch.utils.flop_counter``, forward and backward).

    python benchmarks/step_profile.py                                  # the ResNet arm, 64x64 frames
    python benchmarks/step_profile.py --trunk-depth 2 --image-tokens grid   # the trunk before the tiny preset's
    python benchmarks/step_profile.py --arm "ViT scratch" --image-size 32 --batch-size 64
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import get_args

import lightning as L
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from bridge.argtypes import positive_int
from bridge.vla.demos import DemoDataModule, collect_demos, save_demos
from bridge.vla.policy.configuration import ImageTokens, PolicyConfig
from bridge.vla.training import VLAPolicy
from recipes.lineage.presets import LR, PRESETS, arms, make_world, policy_settings
from recipes.lineage.report_data import cpu_name


def timed(fn: Callable[[], object], rounds: int) -> float:
    """The median seconds of ``fn`` over ``rounds`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(n: int = 1024, rounds: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / timed(lambda: a @ b, rounds) / 1e9


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arm", default="ResNet scratch", help="a lineage arm of the tiny preset's world")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    tiny = PRESETS["tiny"]
    parser.add_argument(
        "--trunk-depth", type=positive_int, default=tiny.trunk_depth, help="the policy's Transformer blocks"
    )
    parser.add_argument("--image-tokens", choices=get_args(ImageTokens), default=tiny.image_tokens)
    parser.add_argument("--episodes", type=int, default=200, help="demos collected for the batches")
    parser.add_argument("--rounds", type=int, default=10, help="timed calls per part")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def flops(fn: Callable[[], object]) -> int:
    """The FLOPs of one call of ``fn`` (forward and backward), counted by torch."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def parts_of_a_step(policy, data: DemoDataModule, rounds: int) -> tuple[dict[str, float], dict[str, int]]:
    """Median seconds of each part of a step, timed alone on one batch, and the FLOPs of the step and encoder."""
    batches = iter(data.train_dataloader())
    batch = next(batches)
    frames = policy.preprocess(batch["observation.image"])
    optimizer = torch.optim.AdamW(policy.parameters(), lr=LR)

    def loss_backward() -> None:
        optimizer.zero_grad(set_to_none=True)
        policy.compute_loss(batch).loss.backward()

    def step() -> None:
        loss_backward()
        optimizer.step()

    def encoder() -> None:
        policy.encoder.encode(frames).pooled.sum().backward()

    def text() -> None:
        policy.text(list(batch["task"])).pooled.sum().backward()

    def next_batch() -> None:
        nonlocal batches
        try:
            next(batches)
        except StopIteration:
            batches = iter(data.train_dataloader())

    parts = {"batch": next_batch, "text": text, "encoder": encoder, "loss": loss_backward, "step": step}
    return {name: timed(fn, rounds) for name, fn in parts.items()}, {
        "step": flops(loss_backward),
        "encoder": flops(encoder),
    }


def trainer_step(config: PolicyConfig, data: DemoDataModule, steps: int, root: str) -> float:
    """Seconds per step of ``steps`` steps through Lightning's Trainer, as users train."""
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=root)  # fmt: skip
    start = time.perf_counter()
    trainer.fit(VLAPolicy(config, optimizer=lambda p: torch.optim.AdamW(p, lr=LR)), data)
    return (time.perf_counter() - start) / steps


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    preset = replace(PRESETS["tiny"], image_size=args.image_size, batch_size=args.batch_size, arms=(),
                     trunk_depth=args.trunk_depth, image_tokens=args.image_tokens)  # fmt: skip
    arm = {a.label: a for a in arms(preset, None, None)}.get(args.arm)
    if arm is None:
        raise SystemExit(
            f"error: no arm {args.arm!r}; choose from {', '.join(a.label for a in arms(preset, None, None))}"
        )
    world = make_world(preset)
    config = PolicyConfig(encoder=arm.encoder, encoder_kwargs=arm.kwargs, **policy_settings(preset))
    with tempfile.TemporaryDirectory() as tmp:
        path = save_demos(*collect_demos(world, args.episodes, progress=False), Path(tmp) / "demos")
        data = DemoDataModule(str(path), world=world.name, world_options=world.options, episodes=None,
                              batch_size=args.batch_size, val_fraction=0)  # fmt: skip
        data.setup("fit")
        module = VLAPolicy(config)
        module.policy.set_stats(data.stats)
        parts, counted = parts_of_a_step(module.policy.train(), data, args.rounds)
        lightning_step = trainer_step(config, data, 4 * args.rounds, tmp)
    shares = {
        "batch (DataLoader)": parts["batch"],
        "instruction encoder, fwd + bwd": parts["text"],
        "image encoder, fwd + bwd": parts["encoder"],
        "trunk, head and loss, fwd + bwd": parts["loss"] - parts["text"] - parts["encoder"],
        "optimiser step": parts["step"] - parts["loss"],
        "Lightning (loop, logging, metrics)": lightning_step - parts["batch"] - parts["step"],
    }
    table = Table(title=f"{args.arm}, {args.image_size}x{args.image_size} frames, batch {args.batch_size}, "
                        f"{args.threads} thread(s), {cpu_name()}")  # fmt: skip
    for column in ("part", "ms", "share of a Trainer step"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for name, seconds in shares.items():
        table.add_row(name, f"{1000 * seconds:.1f}", f"{seconds / lightning_step:.0%}")
    table.add_row("a Trainer step", f"{1000 * lightning_step:.1f}", "100%")
    console = Console()
    console.print(table)
    step, encoder = counted["step"], counted["encoder"]
    console.print(
        f"step: {step / 1e9:.2f} GFLOP (fwd + bwd), {step / parts['loss'] / 1e9:.1f} GFLOP/s achieved; "
        f"image encoder: {encoder / 1e9:.2f} GFLOP, {encoder / parts['encoder'] / 1e9:.1f} GFLOP/s; "
        f"a 1024x1024 float32 matmul on this core: {matmul_gflops():.1f} GFLOP/s"
    )


if __name__ == "__main__":
    main()
