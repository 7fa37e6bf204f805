"""Verdicts on synthetic arms: clear differences are called, identical arms are not."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.analysis.bootstrap import (
    Interval,
    bootstrap_means,
    compare,
    interval,
    probability_of_improvement,
    verdict,
)


def arm(rates, episodes=200, seed=0):
    """(seeds, episodes) successes, seed i succeeding with probability rates[i]."""
    rng = np.random.default_rng(seed)
    return (rng.random((len(rates), episodes)) < np.asarray(rates)[:, None]).astype(float)


def test_a_clear_difference_is_better_one_way_and_worse_the_other():
    strong, weak = arm([0.9, 0.85, 0.92], seed=1), arm([0.4, 0.5, 0.45], seed=2)
    forward, backward = compare("strong", strong, "weak", weak), compare("weak", weak, "strong", strong)
    assert forward.verdict == "better" and backward.verdict == "worse"
    assert forward.difference.low > 0.3 and forward.probability_of_improvement == 1.0
    assert backward.probability_of_improvement == 0.0


def test_identical_distributions_give_no_detectable_difference():
    calls = [compare("a", arm([0.6] * 3, seed=s), "b", arm([0.6] * 3, seed=100 + s)).verdict for s in range(20)]
    # Each interval is 95%: at most a few of 20 identical pairs may be called by chance.
    assert calls.count("no detectable difference") >= 17


def test_the_interval_covers_the_mean_and_widens_with_seed_spread():
    steady, spread = arm([0.5, 0.5, 0.5], seed=3), arm([0.1, 0.5, 0.9], seed=3)
    a, b = interval(steady), interval(spread)
    assert a.low <= a.mean <= a.high and b.low <= b.mean <= b.high
    assert (b.high - b.low) > 2 * (a.high - a.low)  # the seeds' spread is resampled, not only the episodes'


def test_the_bootstrap_is_deterministic_for_a_seed():
    scores = arm([0.3, 0.7], seed=4)
    assert np.array_equal(bootstrap_means(scores, reps=300, seed=7), bootstrap_means(scores, reps=300, seed=7))
    assert not np.array_equal(bootstrap_means(scores, reps=300, seed=7), bootstrap_means(scores, reps=300, seed=8))


def test_probability_of_improvement_counts_ties_as_half():
    assert probability_of_improvement(arm([1, 0]), arm([1, 0])) == 0.5


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.1, 0.2, "better"),
        (-0.2, -0.1, "worse"),
        (-0.1, 0.1, "no detectable difference"),
        (0.0, 0.1, "no detectable difference"),
    ],
)
def test_verdict_reads_only_the_interval(low, high, expected):
    assert verdict(Interval(0.5, low, high)) == expected


def test_unpaired_shapes_are_refused():
    with pytest.raises(ValueError, match="same seeds and episodes"):
        compare("a", arm([0.5, 0.5]), "b", arm([0.5, 0.5, 0.5]))
