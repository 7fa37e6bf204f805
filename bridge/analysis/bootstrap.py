"""Is arm A better than arm B? Intervals over training seeds *and* evaluation episodes, and a verdict.

One training run is one draw: a rerun on another machine can move a policy's success as much as a change
of seed. So every arm is trained with several seeds and evaluated on the same episodes, and its score is a
matrix ``scores[seed, episode]`` of successes (0/1). Following Agarwal et al. (NeurIPS 2021, "Deep RL at the
Edge of the Statistical Precipice"), intervals come from a stratified bootstrap that resamples both levels:
the training seeds, and the episodes. A difference between two arms resamples the *same* episodes for both
(they were evaluated on the same scenes) and pairs seed ``i`` of one arm with seed ``i`` of the other (the
same seed fixes the same data order). The verdict reads only the interval of the difference.

rliable is the reference implementation, but it pins ``arch < 8``, whose last release (7.2) fails to import
beside pandas 3 (which ``datasets`` brings); scipy's ``bootstrap`` resamples one level only. The two-level
resampling below is therefore written out in numpy (a few lines); the probability of improvement is
scipy's Mann-Whitney U statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import mannwhitneyu

VERDICTS = ("better", "worse", "no detectable difference")


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95% bootstrap interval."""

    mean: float
    low: float
    high: float

    def holds_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b``: the paired difference of mean success, P(a seed of a beats a seed of b), the verdict."""

    a: str
    b: str
    difference: Interval
    probability_of_improvement: float
    verdict: str


def check_scores(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"{name} must be a (seeds, episodes) matrix with at least one of each, got {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return scores


def bootstrap_means(scores: np.ndarray, reps: int = 10_000, seed: int = 0, chunk: int = 500) -> np.ndarray:
    """``reps`` bootstrap means of ``scores[seed, episode]``: seeds and episodes resampled with replacement."""
    scores = check_scores(scores)
    n_seeds, n_episodes = scores.shape
    rng = np.random.default_rng(seed)
    means = np.empty(reps)
    for start in range(0, reps, chunk):  # chunks bound the memory: (chunk, seeds, episodes) at a time
        n = min(chunk, reps - start)
        rows = rng.integers(n_seeds, size=(n, n_seeds, 1))
        cols = rng.integers(n_episodes, size=(n, 1, n_episodes))
        means[start : start + n] = scores[rows, cols].mean(axis=(1, 2))
    return means


def interval(scores: np.ndarray, reps: int = 10_000, seed: int = 0) -> Interval:
    """Mean of ``scores[seed, episode]`` with its 95% stratified-bootstrap (percentile) interval."""
    scores = check_scores(scores)
    low, high = np.percentile(bootstrap_means(scores, reps, seed), [2.5, 97.5])
    return Interval(float(scores.mean()), float(low), float(high))


def probability_of_improvement(a: np.ndarray, b: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 for a training seed X of ``a`` and Y of ``b``, on each seed's mean success."""
    x, y = check_scores(a, "a").mean(axis=1), check_scores(b, "b").mean(axis=1)
    u = mannwhitneyu(x, y, alternative="greater").statistic  # counts pairs with x > y, ties as one half
    return float(u / (len(x) * len(y)))


def verdict(difference: Interval) -> str:
    """ "better" or "worse" only when the interval of the difference excludes zero."""
    if difference.low > 0:
        return "better"
    if difference.high < 0:
        return "worse"
    return "no detectable difference"


def compare(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray, reps: int = 10_000, seed: int = 0) -> Comparison:
    """Arm ``a`` against arm ``b``, evaluated on the same episodes (columns) with paired seeds (rows)."""
    a, b = check_scores(a, a_name), check_scores(b, b_name)
    if a.shape != b.shape:
        raise ValueError(
            f"{a_name} {a.shape} and {b_name} {b.shape} must be scored on the same seeds and episodes to be paired"
        )
    difference = interval(a - b, reps, seed)
    return Comparison(a_name, b_name, difference, probability_of_improvement(a, b), verdict(difference))
