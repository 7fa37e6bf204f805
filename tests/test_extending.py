"""docs/extending.md, run as printed: an encoder, a world and a recipe, each one file outside the package,
picked up by ``fit``, the policy, demos, evaluation and ``run`` through BRIDGE_PLUGINS."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.cli import main
from bridge.vla.demos import load_demos
from bridge.vla.evaluation.closed_loop import evaluate
from bridge.vla.policy.configuration import PolicyConfig
from bridge.vla.policy.modeling import Policy

ROOT = Path(__file__).resolve().parents[1]
FILES = dict(re.findall(r"```python\n# (\w+\.py)\n(.*?)```", (ROOT / "docs" / "extending.md").read_text(), re.S))
PLUGINS = "my_encoders,my_worlds,my_recipes"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The three files of docs/extending.md, written out as they are printed there."""
    assert set(FILES) == {"my_encoders.py", "my_worlds.py", "my_recipes.py"}
    path = tmp_path_factory.mktemp("my_bridge")
    for name, code in FILES.items():
        (path / name).write_text(code)
    return path


@pytest.fixture
def plugins(folder, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("BRIDGE_PLUGINS", PLUGINS)
    return folder


def bridge(folder: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(folder), "BRIDGE_PLUGINS": PLUGINS, "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "bridge", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


TINY = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.accelerator", "cpu",
        "--trainer.devices", "1"]  # fmt: skip


def test_the_encoder_trains_with_fit(folder, tmp_path):
    config = str(ROOT / "configs" / "lenet5_digits.yaml")
    result = bridge(folder, tmp_path, "fit", "--config", config, "--model.init_args.model", "twostage16",
                    "--name", "twostage16", "--trainer.max_epochs", "1", *TINY)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "runs" / "twostage16" / "checkpoints" / "last.ckpt").is_file()


def test_the_world_collects_demos_and_the_encoder_drives_a_policy_in_it(plugins, tmp_path):
    main(["vla", "collect", "--world", "slide", "--episodes", "4", "--num-envs", "4", "--out", str(tmp_path / "d")])
    dataset, meta = load_demos(tmp_path / "d")
    assert meta["world"] == "slide" and meta["num_episodes"] == 4
    assert np.asarray(dataset["action"]).shape[1] == 1  # the world's one action dimension, not reach's two

    policy = Policy(PolicyConfig(world="slide", encoder="twostage16", image_size=16, dim=32, depth=1)).eval()
    assert len(policy.encoder_films) == 2  # FiLM after both of the encoder's stages, as film_sites() says
    actions = policy.predict(torch.zeros(3, 16, 16, 3, dtype=torch.uint8), torch.zeros(3, 1), ["slide left"] * 3)
    assert actions.shape == (3, 1, 1) and actions.abs().max() <= 1

    result, _ = evaluate(policy.as_agent(), policy.config.make_world(), episodes=6, seeds=1, num_envs=6,
                         progress=False)  # fmt: skip
    assert result.world == "slide"
    assert result.conditions["expert"].success_rate == 1.0 and result.conditions["policy"].episodes == 6


def test_the_recipe_runs_with_run(folder, tmp_path):
    listing = bridge(folder, tmp_path, "run", "--help")
    assert "digits-race" in listing.stdout, listing.stderr[-2000:]
    result = bridge(folder, tmp_path, "run", "digits-race", "--models", "lenet5", "twostage16", "--epochs", "1",
                    "--out", "race", *TINY)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| lenet5") or line.startswith("| two")]
    assert len(rows) == 2 and all(line.rstrip().endswith("% |") for line in rows)
