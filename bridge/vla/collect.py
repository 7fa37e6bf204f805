"""Expert episodes over many seeds, spread over processes.

The seeds are cut into blocks, each run by its own expert seeded by the block's first seed, so the episodes
are the same whether one process runs the blocks or several do. Several processes pay off because a world
steps on one core: the BabyAI bot plans in Python, so its environments cannot be batched into one array op.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from bridge.vla.rollout import Episode, rollouts
from bridge.vla.world import World

WAVES_PER_BLOCK = 16  # a block is this many waves of num_envs environments: long enough to hide a process's hand-off


def default_workers() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def expert_episodes(
    world: World, seeds: range, noise: float | None, num_envs: int, workers: int
) -> Iterator[tuple[list[Episode], int]]:
    """For each block of ``seeds`` in order: its successful expert episodes (frames and labels recorded) and
    how many failed. ``workers`` > 1 runs the blocks in that many processes (spawned: safe after torch's
    threads have started)."""
    size = num_envs * WAVES_PER_BLOCK
    blocks = [seeds[i : i + size] for i in range(0, len(seeds), size)]
    run = partial(_block, world, noise, num_envs)
    if workers <= 1 or len(blocks) <= 1:
        yield from map(run, blocks)
        return
    pool = ProcessPoolExecutor(min(workers, len(blocks)), mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(run, blocks)
    finally:  # interrupted: the blocks not yet started are dropped, not run to the end
        pool.shutdown(cancel_futures=True)


def _block(world: World, noise: float | None, num_envs: int, seeds: range) -> tuple[list[Episode], int]:
    expert = world.expert(seed=seeds[0], noise=noise)
    episodes = list(rollouts(expert, seeds, world, num_envs, record=len(seeds), label=expert.label))
    kept = [ep for ep in episodes if ep.success]
    return kept, len(episodes) - len(kept)
