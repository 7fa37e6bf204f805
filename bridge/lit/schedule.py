"""Per-step learning-rate schedules, among them a cosine that ends when the Trainer's time budget does.

A Trainer stops at ``max_steps`` or at ``max_time``, whichever comes first. ``cosine`` is laid over
``max_steps`` and cut wherever the clock stops it: on a machine half as fast, 30 minutes hold half the steps
and training ends with the learning rate still well above zero. ``cosine_budget`` follows *progress* instead,
the further along of steps over ``max_steps`` and time over ``max_time`` (:func:`time_spent`), and reaches zero
at whichever limit ends training, so a run is annealed on any machine (budgeted training, Li et al. 2020).
It is not the default: a policy still learning to read its instruction when time runs out is better served by a
learning rate left high (docs/babyai.md has the comparison).
torch's ``CosineAnnealingLR`` counts steps only, hence a ``LambdaLR`` over the same formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer

from bridge.errors import ConfigError


def build_schedule(
    optimizer: torch.optim.Optimizer,
    kind: str,
    total_steps: int,
    warmup_steps: int = 0,
    milestones: list[int] | tuple[int, ...] = (),
    gamma: float = 0.1,
    time_spent: Callable[[], float] = lambda: 0.0,
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up, then constant, cosine, cosine_budget or multistep, from torch's schedulers.

    ``time_spent()`` is the share of the time budget used so far (0 to 1, :func:`time_spent`): cosine_budget
    ends at whichever of ``total_steps`` and the budget comes first (the warm-up's seconds count against the
    budget). Multistep's milestones are steps, as a paper's recipe gives them.
    """
    sched = torch.optim.lr_scheduler
    after = max(1, total_steps - warmup_steps)
    if kind == "constant":
        main = sched.ConstantLR(optimizer, factor=1.0, total_iters=0)
    elif kind == "cosine":
        main = sched.CosineAnnealingLR(optimizer, T_max=after)
    elif kind == "cosine_budget":
        main = sched.LambdaLR(optimizer, lambda step: cosine(max(step / after, time_spent())))
    elif kind == "multistep":
        main = sched.MultiStepLR(optimizer, milestones=[m - warmup_steps for m in milestones], gamma=gamma)
    else:
        raise ConfigError(f"lr_schedule must be constant, cosine, cosine_budget or multistep, got {kind!r}")
    if warmup_steps <= 0:
        return main
    warmup = sched.LinearLR(optimizer, start_factor=0.1, total_iters=warmup_steps)
    return sched.SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps])


def cosine(progress: float) -> float:
    """The cosine's factor of the peak learning rate at ``progress`` (0: start, 1 and after: 0)."""
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def time_spent(trainer: L.Trainer) -> float:
    """The share of the Trainer's ``max_time`` spent training so far (0 without one), by Lightning's own
    ``Timer``, the clock that stops training. Broadcast from rank 0, as ``Timer`` broadcasts its stop, so every
    DDP rank steps the same learning rate (the schedulers step together, so the collective lines up)."""
    timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
    remaining = timer.time_remaining() if timer is not None else None
    if remaining is None:  # no max_time: the steps alone set the pace
        return 0.0
    elapsed = timer.time_elapsed()
    return trainer.strategy.broadcast(min(1.0, elapsed / max(elapsed + remaining, 1e-9)))
