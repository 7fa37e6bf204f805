"""Recipes: found without a hard-coded list (the package's and the plugins'), ``--trainer.*`` parsed by
jsonargparse, one Trainer builder, and the command line's errors (a user error is one line, a bug keeps its
traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import recipes
from bridge.cli import main
from bridge.errors import ConfigError, UnknownNameError
from bridge.lit.schedule import build_schedule
from bridge.lit.trainer import build_trainer
from recipes import kit

PLUGIN = '''
"""Recipes from outside the package."""
from bridge.errors import ConfigError
from recipes import register_recipe


@register_recipe("hello")
def main(argv: list[str]) -> None:
    """Say hello to whoever is named."""
    if argv == ["--user-error"]:
        raise ConfigError("hello needs a name; pass one")
    if argv == ["--bug"]:
        raise ValueError("an internal bug")
    print("hello", *argv)
'''


@pytest.fixture
def plugin_env(tmp_path) -> dict[str, str]:
    (tmp_path / "my_recipes.py").write_text(PLUGIN)
    return {**os.environ, "BRIDGE_PLUGINS": "my_recipes", "PYTHONPATH": str(tmp_path), "WANDB_MODE": "offline"}


def bridge(cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bridge", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_plugin_recipe_is_listed_and_runs(tmp_path, plugin_env):
    listing = bridge(tmp_path, plugin_env, "run", "--help")
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()[3:]}
    assert {"degradation", "lineage", "shortcuts", "hello"} <= set(lines)
    assert "Say hello to whoever is named." in lines["hello"]
    assert not {"kit", "stages", "compare"} & set(lines)  # modules without main(argv) are not recipes
    result = bridge(tmp_path, plugin_env, "run", "hello", "world")
    assert result.returncode == 0 and result.stdout.strip() == "hello world", result.stderr


def test_a_user_error_is_one_line_and_a_bug_keeps_its_traceback(tmp_path, plugin_env):
    user = bridge(tmp_path, plugin_env, "run", "hello", "--user-error")
    assert user.returncode == 1 and user.stderr.strip() == "error: hello needs a name; pass one"
    bug = bridge(tmp_path, plugin_env, "run", "hello", "--bug")
    assert bug.returncode == 1
    assert "Traceback" in bug.stderr and "ValueError: an internal bug" in bug.stderr


def test_an_internal_bug_is_not_swallowed_as_a_user_error(monkeypatch):
    def broken(pattern: str = "*") -> list[str]:
        raise ValueError("a bug deep in the zoo")

    monkeypatch.setattr("bridge.models.list_models", broken)
    with pytest.raises(ValueError, match="a bug deep in the zoo"):  # raised as itself, not SystemExit("error: ...")
        main(["zoo", "list"])


def test_an_unknown_recipe_names_the_close_ones():
    with pytest.raises(UnknownNameError, match="did you mean lineage"):
        recipes.get_recipe("linage")
    with pytest.raises(SystemExit, match="error: no recipe named 'linage'"):
        main(["run", "linage"])


def test_run_without_a_name_lists_the_recipes(capsys):
    with pytest.raises(SystemExit) as done:
        main(["run"])
    assert done.value.code == 2
    assert "lineage" in capsys.readouterr().err


def test_a_bundled_name_cannot_be_registered_again():
    with pytest.raises(ConfigError, match="exists already"):
        recipes.register_recipe("lineage")(lambda argv: None)


def test_only_the_trainer_settings_given_are_passed_on():
    parser = kit.recipe_parser("demo", "A demo.")
    args = kit.parse(parser, ["--trainer.max_steps", "3", "--trainer.accelerator", "cpu"])
    assert args.trainer == {"max_steps": 3, "accelerator": "cpu"} == args.trainer_config
    assert kit.parse(parser, []).trainer == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--trainer.max_stepz", "3"], "unrecognized arguments: --trainer.max_stepz"),
        (["--trainer.max_steps", "many"], 'Parser key "trainer.max_steps"'),
        (["--trainer.logger", "false"], "unrecognized arguments: --trainer.logger"),  # each stage sets its own
    ],
)
def test_bad_trainer_settings_are_refused_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit) as done:
        kit.parse(kit.recipe_parser("demo", "A demo."), argv)
    assert done.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_trainer_setting_exits_without_a_traceback(tmp_path):
    result = bridge(tmp_path, {**os.environ}, "run", "shortcuts", "--trainer.max_epochz", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unrecognized arguments: --trainer.max_epochz" in result.stderr


def test_more_cpu_processes_than_cores_are_refused_when_auto_means_cpu(tmp_path, monkeypatch):
    for accelerator in ("CUDAAccelerator", "MPSAccelerator", "XLAAccelerator"):
        monkeypatch.setattr(f"lightning.pytorch.accelerators.{accelerator}.is_available", staticmethod(lambda: False))
    too_many = (os.cpu_count() or 1) + 1
    for accelerator in ("auto", "cpu"):
        with pytest.raises(ConfigError, match=f"this machine has {os.cpu_count()} cores"):
            build_trainer(tmp_path, "x", logger=False, accelerator=accelerator, devices=str(too_many))
    trainer = build_trainer(tmp_path, "x", logger=False, accelerator="auto", devices=1)
    assert trainer.num_devices == 1


def test_the_trainer_builder_gives_every_run_its_folder_and_checkpoints(tmp_path):
    trainer = build_trainer(tmp_path / "run", "demo", monitor=("val/loss", "min"), logger=False, max_steps=1)
    assert trainer.default_root_dir == str(tmp_path / "run")
    names = {type(cb).__name__: cb for cb in trainer.callbacks}
    assert {"LastCheckpoint", "ModelCheckpoint", "LogCheckpointPaths"} <= set(names)
    assert Path(names["ModelCheckpoint"].dirpath) == tmp_path / "run" / "checkpoints"
    bare = build_trainer(tmp_path / "bare", "demo", logger=False, checkpoint_every_n_steps=None)
    assert not bare.checkpoint_callbacks  # no checkpoints at all, not Lightning's default one either


def test_the_degradation_paper_preset_is_he_et_als_cifar_recipe():
    from recipes.degradation import PRESETS

    paper = PRESETS["paper"]
    recipe = paper.recipe
    assert (paper.batch_size, recipe.lr_sgd, recipe.warmup_sgd) == (128, 0.1, 0)
    assert (recipe.schedule, recipe.milestones, recipe.max_steps) == ("multistep", (32000, 48000), 64000)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=recipe.lr_sgd)
    schedule = build_schedule(optimizer, recipe.schedule, recipe.max_steps, recipe.warmup_sgd, recipe.milestones)
    lrs = {}
    for step in range(48001):
        lrs[step] = optimizer.param_groups[0]["lr"]
        optimizer.step()
        schedule.step()
    assert lrs[0] == lrs[31999] == pytest.approx(0.1)
    assert lrs[32000] == lrs[47999] == pytest.approx(0.01) and lrs[48000] == pytest.approx(0.001)


def test_the_command_line_and_the_data_package_import_no_heavy_library():
    code = (
        "import sys; from bridge.cli import build_parser; import bridge.data, recipes; build_parser(); "
        "recipes.list_recipes(); print(sorted(m for m in ('torch', 'lightning', 'datasets') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"  # `python -m bridge --help` stays fast
