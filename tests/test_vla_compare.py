"""``vla compare``: arms of ``vla eval`` results read back per episode, paired run by run, and their errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from bridge.errors import ConfigError
from bridge.vla.commands import register
from bridge.vla.evaluation.result import ConditionResult, EvalResult


def results(path: Path, success: np.ndarray, seeds: list[int] | None = None, world: str = "babyai:GoToLocal") -> Path:
    """A results.json as `vla eval` writes it (EvalResult.to_json), with one condition: the policy."""
    seeds = list(range(10**9, 10**9 + len(success))) if seeds is None else seeds
    policy = ConditionResult("policy", [int(s) for s in success], [10] * len(success))
    return EvalResult(world, {}, seeds, {"policy": policy}).to_json(path)


def vla_compare(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["vla", "compare", *argv])
    return args.func(args)


def arm(tmp_path: Path, name: str, rates: list[float], seed: int = 0, episodes: int = 300) -> list[str]:
    """One results.json per run, run i succeeding with probability rates[i] on each of the same episodes."""
    rng = np.random.default_rng(seed)
    return [str(results(tmp_path / name / f"{i}.json", rng.random(episodes) < r)) for i, r in enumerate(rates)]


def test_a_clear_gap_is_called_and_a_tie_is_not(tmp_path):
    strong, weak = arm(tmp_path, "strong", [0.95, 0.9], seed=1), arm(tmp_path, "weak", [0.5, 0.55], seed=2)
    twin = [str(results(tmp_path / "twin" / Path(f).name, json_success(f))) for f in strong]
    out = tmp_path / "compare.json"
    summary = vla_compare("--arm", "strong", *strong, "--arm", "weak", *weak, "--arm", "twin", *twin, "--out", str(out))
    assert json.loads(out.read_text()) == summary
    verdicts = {(c["a"], c["b"]): c for c in summary["comparisons"]}
    assert verdicts["strong", "weak"]["verdict"] == "better" and verdicts["weak", "twin"]["verdict"] == "worse"
    same = verdicts["strong", "twin"]["difference"]  # the same episodes twice: a difference of exactly zero
    assert same == {"mean": 0.0, "low": 0.0, "high": 0.0} and verdicts["strong", "twin"]["verdict"].startswith("no")
    pooled = np.mean([json_success(f) for f in strong])
    assert summary["arms"]["strong"]["mean"] == pytest.approx(pooled)
    assert summary["arms"]["strong"]["low"] <= pooled <= summary["arms"]["strong"]["high"]


def json_success(path: str) -> np.ndarray:
    return np.array(json.loads(Path(path).read_text())["conditions"]["policy"]["episode_success"])


def test_results_that_cannot_be_paired_are_refused_with_the_fix(tmp_path):
    a, b = arm(tmp_path, "a", [0.5, 0.5]), arm(tmp_path, "b", [0.5], seed=1)
    with pytest.raises(ConfigError, match="paired run by run.*add or drop runs"):
        vla_compare("--arm", "a", *a, "--arm", "b", *b)
    other = results(tmp_path / "other.json", np.ones(300), seeds=list(range(300)))
    with pytest.raises(ConfigError, match="different episodes.*same world, --episodes and --seeds"):
        vla_compare("--arm", "a", a[0], str(other))
    with pytest.raises(ConfigError, match="evaluated on other episodes than the first arm"):
        vla_compare("--arm", "a", a[0], "--arm", "b", str(other))
    elsewhere = results(tmp_path / "elsewhere.json", np.ones(300), world="babyai:PickupLoc")  # the same seeds
    with pytest.raises(ConfigError, match="different episodes"):
        vla_compare("--arm", "a", a[0], str(elsewhere))
    with pytest.raises(ConfigError, match="has no 'blank' condition; evaluate it with --conditions blank"):
        vla_compare("--arm", "a", *a, "--condition", "blank")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"results": {"policy": {"success_rate": 0.5}}}))  # before results had a version
    with pytest.raises(ConfigError, match="is not an evaluation result of version 1.*vla eval"):
        vla_compare("--arm", "a", str(old))
    damaged = json.loads(Path(a[0]).read_text())
    del damaged["conditions"]["policy"]["episode_success"]  # no per-episode results to pair
    (tmp_path / "damaged.json").write_text(json.dumps(damaged))
    with pytest.raises(ConfigError, match="damaged.json is damaged .*vla eval"):
        vla_compare("--arm", "a", str(tmp_path / "damaged.json"))
    with pytest.raises(ConfigError, match="is not JSON; pass a results.json"):
        vla_compare("--arm", "a", str(Path(__file__)))
    with pytest.raises(ConfigError, match="does not exist"):
        vla_compare("--arm", "a", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="at least one results.json"):
        vla_compare("--arm", "a")
    with pytest.raises(ConfigError, match="a new name"):
        vla_compare("--arm", "a", a[0], "--arm", "a", a[1])
