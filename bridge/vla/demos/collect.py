"""Expert demonstrations: a world's expert episodes over many seeds, spread over processes, as a demo set.

The seeds are cut into blocks, each run by its own expert seeded by the block's first seed, so the episodes
are the same whether one process runs the blocks or several do. Several processes pay off because a world
steps on one core: the BabyAI bot plans in Python, so its environments cannot be batched into one array op.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from functools import partial

from datasets import Dataset
from tqdm.auto import tqdm

from bridge.errors import ConfigError
from bridge.vla.demos.format import demo_features
from bridge.vla.worlds import World
from bridge.vla.worlds.rollout import Episode, rollouts

WAVES_PER_BLOCK = 16  # a block is this many waves of num_envs environments: long enough to hide a process's hand-off


def collect_demos(
    world: World,
    episodes: int,
    seed: int = 0,
    noise: float | None = None,
    num_envs: int = 16,
    progress: bool = True,
    workers: int | None = None,
) -> tuple[Dataset, dict]:
    """``episodes`` successful expert episodes of ``world`` (seeds ``seed``, ``seed + 1``, ...) and their ``meta``
    (:func:`~bridge.vla.demos.format.save_demos` adds the statistics as it writes them).

    ``noise`` is the expert's (None: the world's default). The world executes the expert's actions, and each frame
    records what the expert's ``label`` names for it (for Reach the noise-free command, DART). The rare failed
    episode is dropped and the next seed used, so behaviour cloning never imitates a failure. Seeds stay below the
    world's validation and evaluation seeds. ``workers`` processes (None: one per core, or one for a world that
    says more do not pay, ``World.collect_in_processes``) share the seeds; the episodes do not depend on how many.
    """
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1 (processes that collect), got {workers}")
    expert = world.expert(seed=seed, noise=noise)  # checks the noise here, before any process starts
    workers = workers or (default_workers() if world.collect_in_processes else 1)
    kept, failed = _successful_episodes(world, episodes, seed, noise, num_envs, progress, workers)
    features = demo_features(world.observation, world.action_space)
    rows: dict[str, list] = {name: [] for name in features}
    for index, ep in enumerate(kept):
        for t, (image, label) in enumerate(zip(ep.frames, ep.labels)):  # frames has one more: the last
            rows["observation.image"].append(image)
            if "observation.state" in rows:
                rows["observation.state"].append(ep.states[t])
            rows["action"].append(label)
            rows["task"].append(ep.task)
            rows["episode_index"].append(index)
            rows["frame_index"].append(t)
    dataset = Dataset.from_dict(rows, features=features)
    meta = {
        "world": world.name,
        "world_options": world.options,
        "observation": asdict(world.observation),
        "action_space": asdict(world.action_space),
        "fps": world.fps,
        "expert": expert.describe(),
        "seed": seed,
        "num_episodes": episodes,
        "num_frames": len(dataset),
        "failed_episodes": failed,
    }
    return dataset, meta


def _successful_episodes(
    world: World, episodes: int, seed: int, noise: float | None, num_envs: int, progress: bool, workers: int
) -> tuple[list[Episode], int]:
    """The first ``episodes`` successful expert episodes from seed ``seed`` up, and how many failed on the way."""
    kept, failed, next_seed = [], 0, seed
    with tqdm(total=episodes, desc="collecting demos", unit="ep", disable=not progress) as bar:
        while len(kept) < episodes:
            need = episodes - len(kept)
            seeds = range(next_seed, next_seed + need)
            if seeds[-1] >= world.validation_seed_offset:
                raise ConfigError(
                    f"demo seeds would reach {world.validation_seed_offset:,}, where {world.name}'s validation "
                    f"seeds start (its evaluation seeds at {world.eval_seed_offset:,}); collect fewer episodes or "
                    "from a lower --seed"
                )
            for block, block_failed in expert_episodes(world, seeds, noise, num_envs, workers):
                kept += block
                failed += block_failed
                bar.update(len(block))
            next_seed += need
            if failed > episodes:
                raise ConfigError(
                    f"the expert failed {failed} of {failed + len(kept)} episodes of {world.name}: "
                    + _why_the_expert_fails(world, noise)
                )
    return kept, failed


def _why_the_expert_fails(world: World, noise: float | None) -> str:
    """The likely cause, for an expert that fails more episodes than it finishes: demos of it would be few."""
    if noise:
        return (
            f"at noise {noise:g} its actions are too random to reach the goal; lower --noise, or leave it out for "
            "the world's default"
        )
    options = ", ".join(f"{k}={v}" for k, v in world.options.items())
    return (
        f"its expert cannot solve this world as it is set up ({options}); choose another level or world, or other "
        "--world-options"
    )


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
