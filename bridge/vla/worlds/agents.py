"""Agents: what acts in a world. The policy, the world's expert and the random floor all share one call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from bridge.vla.worlds.spaces import ActionSpace

# (observation batch, info batch) -> actions (n, *action_space.shape); the batches hold only the running episodes.
Agent = Callable[[dict[str, Any], dict[str, Any]], np.ndarray]


class Expert(Protocol):
    """A world's expert: an agent that also names the actions demos record and describes itself."""

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        """The actions the world executes (they may carry exploration noise)."""

    def label(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        """The actions a demonstration records for these observations (e.g. the noise-free command)."""

    def describe(self) -> dict[str, Any]:
        """Plain data on how it acts, kept in the demo set's metadata."""


class RandomAgent:
    """Uniform actions from the world's action space: the floor any learned policy must beat."""

    def __init__(self, action_space: ActionSpace, seed: int = 0) -> None:
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        return self.action_space.sample(self.rng, len(obs["task"]))
