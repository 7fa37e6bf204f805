"""Closed-loop evaluation in any world: the policy, its language ablations and the baselines on the same episodes.

A policy is judged by whether it succeeds in its world, not by its validation loss. Every condition runs on
the *same* episodes (the same seeds, so the same scenes and instructions): the policy, the policy with a
blank or a shuffled instruction (language ablations), the world's expert (ceiling) and uniformly random
actions (floor).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from bridge.errors import ConfigError
from bridge.vla.evaluation.result import ConditionResult, EvalResult
from bridge.vla.worlds import World
from bridge.vla.worlds.agents import Agent, RandomAgent
from bridge.vla.worlds.rollout import Episode, rollouts

SEED_STRIDE = 10_000  # evaluation seed s uses scenes offset + s * SEED_STRIDE + i

CONDITIONS = ("policy", "blank", "shuffled", "expert", "random")


def eval_seeds(episodes: int, seeds: int, offset: int = World.eval_seed_offset) -> list[int]:
    """The evaluation episodes: ``episodes`` scenes for each of ``seeds`` evaluation seeds, from ``offset`` up."""
    return [offset + s * SEED_STRIDE + i for s in range(seeds) for i in range(episodes)]


def shuffled(tasks: Sequence[str], seed: int = 0) -> list[str]:
    """Each episode gets another episode's instruction (a random derangement), so the words are real but wrong."""
    n = len(tasks)
    if n < 2:
        raise ConfigError("the shuffled-instruction ablation needs at least two episodes")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    # Rotate a random order by one: every episode receives another one's instruction.
    target = np.empty(n, dtype=int)
    target[perm] = np.roll(perm, -1)
    return [tasks[j] for j in target]


def evaluate(
    policy: Agent | None,
    world: World,
    episodes: int = 50,
    seeds: int = 3,
    num_envs: int = 50,
    conditions: Sequence[str] = CONDITIONS,
    record: int = 0,
    expert_noise: float | None = None,
    progress: bool = True,
    scenes: Literal["evaluation", "validation"] = "evaluation",
) -> tuple[EvalResult, dict[str, list[Episode]]]:
    """Run ``conditions`` on the same ``episodes x seeds`` scenes of ``world``; return the result and the episodes.

    ``policy`` is any agent (e.g. ``Policy.as_agent()``; None when only the expert and random run). Each
    condition's first ``record`` episodes keep their frames (for :func:`~bridge.vla.evaluation.video.write_video`).
    ``scenes="validation"`` draws the scenes from the world's validation seeds instead, for choosing a checkpoint
    during training without touching the episodes it will be reported on.
    """
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown:
        raise ConfigError(f"unknown conditions {unknown}; choose from {', '.join(CONDITIONS)}")
    if episodes < 1 or seeds < 1:
        raise ConfigError(f"evaluation needs at least one episode and one seed, got episodes={episodes}, seeds={seeds}")
    if policy is None and any(name in ("policy", "blank", "shuffled") for name in conditions):
        raise ConfigError(
            "conditions policy, blank and shuffled need a policy; pass one or ask only for expert and random"
        )
    offset = world.validation_seed_offset if scenes == "validation" else world.eval_seed_offset
    seed_list = eval_seeds(episodes, seeds, offset)
    told: dict[str, Sequence[str] | None] = {"blank": [""] * len(seed_list)}
    if "shuffled" in conditions:  # every episode told another one's instruction (needs two episodes or more)
        told["shuffled"] = shuffled(world.tasks(seed_list))
    agents: dict[str, Agent | None] = {
        "policy": policy, "blank": policy, "shuffled": policy,
        "expert": world.expert(seed=0, noise=expert_noise),
        "random": RandomAgent(world.action_space, seed=0),
    }  # fmt: skip
    results, rolled = {}, {}
    for name in conditions:
        stream = rollouts(agents[name], seed_list, world, num_envs, told.get(name), record)
        eps = list(tqdm(stream, total=len(seed_list), desc=f"eval {name}", unit="ep", disable=not progress))
        rolled[name], results[name] = eps, ConditionResult.of(name, eps, seeds)
    return EvalResult(world.name, world.options, seed_list, results), rolled
