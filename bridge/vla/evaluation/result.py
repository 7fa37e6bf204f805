"""The one evaluation result: what ``vla eval``, the recipes and the comparisons write and read, as JSON.

A result keeps every episode's success and length beside the totals, so two results evaluated on the same scenes
(``world`` and ``episode_seeds``) can be paired episode by episode (:mod:`bridge.vla.evaluation.arms`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

from bridge.errors import ConfigError

VERSION = 1


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a success rate (sensible at 0%, 100% and small n); (0, 1) for no trials."""
    if trials == 0:
        return 0.0, 1.0
    ci = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass
class ConditionResult:
    """One condition (the policy, an ablation, the expert, random actions) over every episode, in seed order."""

    name: str
    episode_success: list[int]  # 1 or 0 per episode
    episode_steps: list[int]  # each episode's length; a failure runs to the step limit
    seeds: int = 1  # evaluation seeds: the episodes are ``seeds`` equal groups of scenes

    @classmethod
    def of(cls, name: str, episodes: list, seeds: int = 1) -> ConditionResult:
        """From rolled-out episodes (``bridge.vla.worlds.rollout.Episode``)."""
        return cls(name, [int(ep.success) for ep in episodes], [int(ep.steps) for ep in episodes], seeds)

    @property
    def successes(self) -> int:
        return sum(self.episode_success)

    @property
    def episodes(self) -> int:
        return len(self.episode_success)

    @property
    def success_rate(self) -> float:
        return self.successes / max(1, self.episodes)

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)

    @property
    def per_seed(self) -> list[float]:
        """The success rate of each evaluation seed's scenes."""
        return [float(np.mean(group)) for group in np.array_split(self.episode_success, self.seeds)]

    @property
    def mean_steps_to_success(self) -> float:
        """The mean length of the successful episodes; NaN when none succeeded."""
        wins = [s for s, ok in zip(self.episode_steps, self.episode_success) if ok]
        return float(np.mean(wins)) if wins else math.nan

    @property
    def mean_steps(self) -> float:
        return float(np.mean(self.episode_steps)) if self.episode_steps else math.nan

    def summary(self) -> str:
        low, high = self.ci95
        steps = "-" if math.isnan(self.mean_steps_to_success) else f"{self.mean_steps_to_success:.1f}"
        rate = f"{self.success_rate:6.1%} [{low:.1%}, {high:.1%}]"
        return f"{self.name:>9}: {rate}  steps {steps}  length {self.mean_steps:.1f}"


@dataclass
class EvalResult:
    """Every condition of one evaluation, on the scenes ``episode_seeds`` of ``world`` with ``world_options``."""

    world: str
    world_options: dict[str, Any]
    episode_seeds: list[int]
    conditions: dict[str, ConditionResult]
    checkpoint: str | None = None
    temperature: float = 0.0  # 0: the most likely action; above 0, actions drawn from softmax(logits / T)
    videos: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain data, with each condition's totals beside its episodes (for a reader of the JSON file)."""
        data = {"version": VERSION, **asdict(self)}
        for name, c in self.conditions.items():
            steps = c.mean_steps_to_success
            data["conditions"][name].update(
                success_rate=c.success_rate, successes=c.successes, episodes=c.episodes, ci95=list(c.ci95),
                per_seed=c.per_seed, mean_steps_to_success=None if math.isnan(steps) else steps,
                mean_steps=c.mean_steps,
            )  # fmt: skip
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "the result") -> EvalResult:
        hint = "evaluate the policy again with `python -m bridge vla eval`"
        if not isinstance(data, dict) or data.get("version") != VERSION:
            version = data.get("version") if isinstance(data, dict) else None
            raise ConfigError(f"{source} is not an evaluation result of version {VERSION} (got {version!r}); {hint}")
        try:
            conditions = {
                name: ConditionResult(name, list(c["episode_success"]), list(c["episode_steps"]), int(c["seeds"]))
                for name, c in data["conditions"].items()
            }
            return cls(
                world=str(data["world"]), world_options=dict(data["world_options"]),
                episode_seeds=list(data["episode_seeds"]), conditions=conditions, checkpoint=data.get("checkpoint"),
                temperature=float(data.get("temperature", 0.0)), videos=dict(data.get("videos", {})),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"{source} is damaged ({type(err).__name__}: {err}); {hint}") from None

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write atomically (a temporary file, then a rename): a crash leaves the old file or the new one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        os.replace(tmp, path)
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> EvalResult:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; pass a results.json that `python -m bridge vla eval` wrote")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(
                f"{path} is not JSON; pass a results.json that `python -m bridge vla eval` wrote"
            ) from None
        return cls.from_dict(data, str(path))
