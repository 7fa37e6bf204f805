"""The policy-step benchmarks refuse bad input with one line that names the fix, before any timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("script", ["frame_sharing.py", "cpu_bf16.py"])
def test_a_missing_demo_set_ends_with_the_collect_command(script, tmp_path):
    done = run_benchmark(script, "--demos", str(tmp_path / "none"))
    assert done.returncode == 1
    assert "error: no demo set at" in done.stderr and "vla collect" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("kwargs", ["{widths: [16", "[16, 32]"])
def test_encoder_kwargs_must_be_a_yaml_mapping(kwargs):
    done = run_benchmark("cpu_bf16.py", "--encoder", "resnet20", "--encoder-kwargs", kwargs)
    assert done.returncode == 2
    assert "--encoder-kwargs: must be a YAML mapping such as '{widths: [16, 32]}'" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unknown_encoder_names_the_close_ones_before_the_demos_load(tmp_path):
    done = run_benchmark("cpu_bf16.py", "--encoder", "resnet2O", "--demos", str(tmp_path / "none"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "unknown model 'resnet2O'; did you mean" in done.stderr and "resnet20" in done.stderr


def test_the_step_profile_names_the_arms_it_knows():
    done = run_benchmark("step_profile.py", "--arm", "ResNet scrach")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "error: no arm 'ResNet scrach'; choose from" in done.stderr and "ResNet scratch" in done.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--trunk-depth", "0"], "argument --trunk-depth: must be 1 or more, got 0"),
        (
            ["--image-tokens", "dots"],
            "argument --image-tokens: invalid choice: 'dots' (choose from 'grid', 'pooled', 'keypoints')",
        ),
    ],
)
def test_the_step_profile_refuses_a_trunk_it_cannot_build(args, said):
    done = run_benchmark("step_profile.py", *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert said in done.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--config", "configs/no_such.yaml"],
            "--config configs/no_such.yaml: no such file; e.g. configs/vla_resnet.yaml",
        ),
        (["--seconds", "0"], "--seconds must be above 0, got 0.0"),
        (["--lean-lr", "0"], "--lean-lr must be above 0, got 0.0"),
        (["--steps", "0"], "--steps must be above 0, got 0"),
    ],
)
def test_time_to_success_refuses_a_missing_config_and_settings_that_are_not_positive(args, said):
    done = run_benchmark("time_to_success.py", *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert said in done.stderr
