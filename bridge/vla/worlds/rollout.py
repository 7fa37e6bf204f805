"""The rollout loop: any agent in any world, one episode per seed, many environments stepped as a batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.errors import ConfigError
from bridge.vla.worlds.agents import Agent
from bridge.vla.worlds.base import World


@dataclass
class Episode:
    seed: int
    task: str  # the world's instruction
    given: str  # what the agent was told (differs under the language ablations)
    success: bool = False
    steps: int = 0
    frames: list[np.ndarray] = field(default_factory=list)  # what the agent saw, then the final frame
    states: list[np.ndarray] = field(default_factory=list)  # empty in a world without a state vector
    actions: list[np.ndarray] = field(default_factory=list)  # what the world executed
    labels: list[np.ndarray] = field(default_factory=list)  # what ``label`` said to record (demos)


def rollouts(
    agent: Agent,
    seeds: Sequence[int],
    world: World,
    num_envs: int = 50,
    instructions: Sequence[str] | None = None,
    record: int = 0,
    label: Agent | None = None,
) -> Iterator[Episode]:
    """Run one episode per seed in ``world``, ``num_envs`` at a time; yield them in seed order.

    ``instructions`` replaces what the agent is told, one per seed (the world still checks its own
    target). The first ``record`` episodes keep their frames, states and actions, and, when ``label`` is
    given (an expert's ``label``), the actions it names for the same observations.
    """
    if instructions is not None and len(instructions) != len(seeds):
        raise ConfigError(f"got {len(instructions)} instructions for {len(seeds)} seeds")
    n = max(1, min(num_envs, len(seeds)))
    envs = world.make_vec(n)
    try:
        for start in range(0, len(seeds), n):
            wave = list(seeds[start : start + n])
            yield from _wave(envs, world, agent, label, wave, start, instructions, record)
    finally:
        envs.close()


def _wave(envs, world: World, agent: Agent, label, wave: list[int], start: int, instructions, record: int):
    n = envs.num_envs
    # A short last wave pads with copies of its last seed; those copies start inactive and are never reported.
    obs, info = envs.reset(seed=wave + [wave[-1]] * (n - len(wave)))
    tasks = list(obs["task"])
    given = list(instructions[start : start + len(wave)]) if instructions is not None else tasks[: len(wave)]
    episodes = [Episode(seed, tasks[i], given[i]) for i, seed in enumerate(wave)]
    history = _History(world.observation.n_obs_steps, obs["image"])
    active = np.arange(n) < len(wave)
    steps = np.zeros(n, dtype=int)
    while active.any():
        idx = np.flatnonzero(active)
        sub_obs = {key: value[idx] for key, value in obs.items() if key != "task"}
        sub_obs["image"], sub_obs["task"] = history.frames(obs["image"])[idx], [given[i] for i in idx]
        sub_info = _select(info, idx, n)
        actions = world.action_space.zeros(n)
        actions[idx] = agent(sub_obs, sub_info)
        labels = dict(zip(idx, label(sub_obs, sub_info))) if label is not None else {}
        for i in idx:
            if start + i < record:
                ep = episodes[i]
                ep.frames.append(obs["image"][i])
                ep.actions.append(actions[i])
                if "state" in obs:
                    ep.states.append(obs["state"][i])
                if i in labels:
                    ep.labels.append(labels[i])
        obs, reward, terminated, truncated, info = envs.step(actions)
        steps[active] += 1
        done = (terminated | truncated) & active
        success = world.success(reward, terminated, info)
        for i in np.flatnonzero(done):
            episodes[i].success, episodes[i].steps = bool(success[i]), int(steps[i])
            # Same-step autoreset: ``obs`` already shows env i's next episode; its last frame is in final_obs.
            if start + i < record:
                episodes[i].frames.append(info["final_obs"][i]["image"])
        history.restart(done, obs["image"])
        active &= ~done
    yield from episodes


def _select(info: dict[str, Any], idx: np.ndarray, n: int) -> dict[str, Any]:
    """The per-environment entries of a vector env's ``info``, for the running environments ``idx``."""
    return {
        key: value[idx]
        for key, value in info.items()
        if not key.startswith("_") and key not in ("final_obs", "final_info")
        and isinstance(value, np.ndarray) and value.shape[:1] == (n,)
    }  # fmt: skip


class _History:
    """The last ``k`` frames of each environment, (n, k, H, W, 3); k = 1 hands the frames through untouched."""

    def __init__(self, k: int, first: np.ndarray) -> None:
        self.k = k
        self.stack = np.repeat(first[:, None], k, axis=1) if k > 1 else None

    def frames(self, current: np.ndarray) -> np.ndarray:
        if self.stack is None:
            return current
        self.stack = np.concatenate([self.stack[:, 1:], current[:, None]], axis=1)
        return self.stack

    def restart(self, done: np.ndarray, current: np.ndarray) -> None:
        """Environments that just reset start their history anew with the new episode's first frame."""
        if self.stack is not None and done.any():
            self.stack[done] = current[done][:, None]
