"""The two specs of a world: what an agent observes and which actions it may take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from bridge.errors import ConfigError


@dataclass(frozen=True)
class ObservationSpec:
    """What an agent sees each step: square RGB frames, an optional state vector, and a frame history.

    With ``n_obs_steps`` k > 1 the rollout hands the agent the last k frames, ``image`` (n, k, H, W, 3),
    the first frame repeated at an episode's start (a partial view needs memory).
    """

    image_size: int
    state_dim: int = 0
    n_obs_steps: int = 1

    def __post_init__(self) -> None:
        if self.image_size < 1 or self.state_dim < 0 or self.n_obs_steps < 1:
            raise ConfigError(f"invalid observation spec {self}: image_size, n_obs_steps >= 1 and state_dim >= 0")


@dataclass(frozen=True)
class ActionSpace:
    """A continuous box of ``size`` dimensions in [low, high], or a discrete set of ``size`` actions."""

    kind: Literal["box", "discrete"]
    size: int
    low: float = -1.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("box", "discrete") or self.size < 1 or (self.kind == "box" and not self.low < self.high):
            raise ConfigError(f"invalid action space {self}: kind box (low < high) or discrete, size >= 1")

    @classmethod
    def box(cls, dim: int, low: float = -1.0, high: float = 1.0) -> ActionSpace:
        return cls("box", dim, low, high)

    @classmethod
    def discrete(cls, n: int) -> ActionSpace:
        return cls("discrete", n, 0, n - 1)  # actions 0 .. n-1

    @property
    def shape(self) -> tuple[int, ...]:
        """One action's shape: (size,) for a box, () for a discrete action (an index)."""
        return (self.size,) if self.kind == "box" else ()

    @property
    def dtype(self) -> type[np.generic]:
        return np.float32 if self.kind == "box" else np.int64

    def zeros(self, n: int) -> np.ndarray:
        return np.zeros((n, *self.shape), dtype=self.dtype)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniform actions (the random agent's)."""
        if self.kind == "box":
            return rng.uniform(self.low, self.high, size=(n, self.size)).astype(np.float32)
        return rng.integers(self.size, size=n)
