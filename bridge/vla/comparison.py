"""Arms of ``vla eval`` results compared: is one way of training (or acting) better than another?

An arm is a list of ``results.json`` files, one per training run, all evaluated on the same episodes; each file
keeps every episode's seed and success. The arm becomes a (runs, episodes) matrix for
:mod:`bridge.analysis.comparisons`, whose bootstrap resamples both the runs and the episodes, and two arms are
paired run by run (the i-th file of each, e.g. the same training seed, or the same checkpoint acted two ways).
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np

from bridge.analysis.comparisons import Comparison, Interval, compare, interval
from bridge.errors import ConfigError


def arm_scores(paths: list[Path], condition: str = "policy") -> tuple[np.ndarray, tuple]:
    """One arm's (runs, episodes) matrix of successes for ``condition``, and its scenes: (world, episode seeds)."""
    rows, scenes = [], None
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; pass the results.json files `vla eval` wrote")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(f"{path} is not JSON; pass the results.json files `vla eval` wrote") from None
        result = data.get("results", {}).get(condition)
        if result is None:
            raise ConfigError(f"{path} has no {condition!r} condition; evaluate it with --conditions {condition}")
        if "episode_success" not in result:
            raise ConfigError(f"{path} predates per-episode results; run `vla eval` on its checkpoint again")
        if scenes is None:
            scenes, first = (data["world"], data["episode_seeds"]), path
        elif (data["world"], data["episode_seeds"]) != scenes:
            raise ConfigError(
                f"{path} and {first} were evaluated on different episodes; pairing needs the same scenes: "
                "run `vla eval` with the same world, --episodes and --seeds"
            )
        rows.append(result["episode_success"])
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
