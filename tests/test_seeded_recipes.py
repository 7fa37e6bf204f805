"""Seeds in the recipes that compare networks (degradation, shortcuts): averaged curves, claims with intervals."""

from __future__ import annotations

from bridge.lit.curves import ErrorCurves
from recipes.classifier_sweep import Result, error_curves, final_errors
from recipes.degradation import PRESETS, report

LABELS = [r.label for r in PRESETS["cpu"].runs()]


def result(train: float, seed: int) -> Result:
    curves = ErrorCurves()
    curves.train, curves.test = [train + 10, train], [train + 12, train + 2]
    return Result(curves, seconds=1.0, params=100, seed=seed)


def results(errors: dict[str, list[float]]) -> dict[str, list[Result]]:
    return {label: [result(e, seed) for seed, e in enumerate(errors[label])] for label in LABELS}


def test_curves_average_over_seeds_and_keep_each_seed():
    curves = error_curves({"a": [result(10.0, 0), result(20.0, 1)]})
    assert curves["a"]["train"] == [25.0, 15.0] and curves["a"]["test"] == [27.0, 17.0]
    assert curves["a"]["seeds"]["1"]["train"] == [30.0, 20.0]
    assert final_errors([result(10.0, 0), result(20.0, 1)]).tolist() == [[10.0], [20.0]]


def test_a_clear_degradation_over_seeds_is_called_and_a_tie_is_not():
    errors = {label: [5.0, 6.0, 5.5] for label in LABELS} | {"plain-56": [20.0, 22.0, 21.0]}
    text = report(results(errors), "cpu", num_classes=10)
    assert "over 3 seeds plain-56 minus plain-20: +15.50" in text and "], higher)" in text
    assert "ResNet-56 minus ResNet-20: +0.00 [+0.00, +0.00], no detectable difference" in text
    assert "training seeds 0, 1, 2" in text


def test_one_seed_states_no_interval():
    text = report(results({label: [5.0] for label in LABELS}), "cpu", num_classes=10)
    assert "minus" not in text and "(5.00% vs 5.00%)" in text
