"""Arms of ``vla eval`` results compared: is one way of training (or acting) better than another?

An arm is a list of ``results.json`` files, one per training run, all evaluated on the same episodes; each file
keeps every episode's seed and success. The arm becomes a (runs, episodes) matrix for
:mod:`bridge.analysis.bootstrap`, whose bootstrap resamples both the runs and the episodes, and two arms are
paired run by run (the i-th file of each, e.g. the same training seed, or the same checkpoint acted two ways).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np

from bridge.analysis.bootstrap import Comparison, Interval, compare, interval
from bridge.errors import ConfigError
from bridge.vla.evaluation.result import EvalResult


def arm_scores(paths: list[Path], condition: str = "policy") -> tuple[np.ndarray, tuple]:
    """One arm's (runs, episodes) matrix of successes for ``condition``, and its scenes: (world, episode seeds)."""
    rows, scenes = [], None
    for path in paths:
        result = EvalResult.from_json(path)
        if condition not in result.conditions:
            raise ConfigError(f"{path} has no {condition!r} condition; evaluate it with --conditions {condition}")
        if scenes is None:
            scenes, first = (result.world, result.episode_seeds), path
        elif (result.world, result.episode_seeds) != scenes:
            raise ConfigError(
                f"{path} and {first} were evaluated on different episodes; pairing needs the same scenes: "
                "run `vla eval` with the same world, --episodes and --seeds"
            )
        rows.append(result.conditions[condition].episode_success)
    return np.array(rows, dtype=np.float64), scenes


def compare_arms(
    arms: dict[str, list[Path]], condition: str = "policy"
) -> tuple[dict[str, Interval], list[Comparison]]:
    """Each arm's mean success with its interval, and every pair of arms' paired difference with a verdict."""
    sizes = {name: len(paths) for name, paths in arms.items()}
    if len(set(sizes.values())) > 1:
        raise ConfigError(
            f"arms are paired run by run, so each needs as many results; got {sizes}: add or drop runs until they match"
        )
    scores, scenes = {}, None
    for name, paths in arms.items():
        scores[name], arm_scenes = arm_scores(paths, condition)
        if scenes is not None and arm_scenes != scenes:
            raise ConfigError(f"arm {name!r} was evaluated on other episodes than the first arm; use the same scenes")
        scenes = arm_scenes
    intervals = {name: interval(s) for name, s in scores.items()}
    return intervals, [compare(a, scores[a], b, scores[b]) for a, b in combinations(scores, 2)]
