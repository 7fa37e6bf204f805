"""``python -m bridge run lineage`` end to end on a sliver of everything: seeds, report, report.json, learning
curves, resumable stages, DDP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bridge.analysis.bootstrap import VERDICTS
from bridge.vla.evaluation.result import EvalResult
from recipes.lineage.report_data import SCHEMA
from wandb_records import logged_metrics

ROOT = Path(__file__).resolve().parents[1]
# 32x32 frames, a few demonstrations and steps: the pipeline's plumbing, not its numbers.
MICRO = ["--image-size", "32", "--shapes", "48", "12", "12", "--pretrain-epochs", "1", "--episodes", "20",
         "--steps", "4", "--eval-episodes", "4", "--eval-seeds", "1", "--batch-size", "16",
         "--vit-pretraining", "--seeds", "2"]  # fmt: skip
SEEDS = [0, 1]
POINTS = [1, 2, 3, 4]  # four curve points along four steps
ARMS = [
    "ResNet frozen",
    "ResNet fine-tuned",
    "ResNet scratch",
    "ViT scratch",
    "ViT fine-tuned",
    "mobilenetv3_small_100",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return {
        **os.environ,
        "HF_DATASETS_CACHE": str(tmp_path_factory.mktemp("hf-datasets")),
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
    }


def lineage(cwd: Path, env: dict, *args: str, arms: list[str] = ARMS) -> subprocess.CompletedProcess:
    """The pipeline on MICRO settings with every kind of arm (the tiny preset itself trains three)."""
    cmd = [sys.executable, "-m", "bridge", "run", "lineage", "--out", "out", *MICRO, "--arms", *arms, *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory, env) -> tuple[Path, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp("lineage")
    result = lineage(cwd, env, "--trainer.accelerator", "cpu", "--trainer.devices", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd, result


def success_column(report: str) -> dict[str, float]:
    rows = re.findall(r"^\| ([^|]+?) \|.*?\| (\d+)% \[\d+, \d+\] \|", report, flags=re.MULTILINE)
    return {name: float(value) for name, value in rows}


def test_report_has_every_encoder_and_the_baselines(run):
    cwd, result = run
    report = (cwd / "out" / "report.md").read_text()
    success = success_column(report)
    assert list(success) == [*ARMS, "expert", "random"]
    assert success["expert"] >= 75 and success["expert"] >= success["random"]
    assert (cwd / "out" / "success.png").stat().st_size > 1000
    assert "pretrained on shapes: validation accuracy" in report and "report:" in result.stdout


def test_every_policy_was_trained_for_the_same_steps_and_recorded(run):
    cwd, _ = run
    folders = sorted((cwd / "out").glob("policy-*"))
    assert len(folders) == len(ARMS) * len(SEEDS)
    assert {f.name.rsplit("-", 1)[1] for f in folders} == {f"seed{s}" for s in SEEDS}
    for folder in folders:
        assert torch.load(folder / "policy.ckpt", weights_only=True, map_location="cpu")["global_step"] == 4
        assert (folder / "eval" / "result.json").is_file() and (folder / "eval" / "rollouts.gif").is_file()
        evaluated = EvalResult.from_json(folder / "eval" / "result.json")  # an evaluation stage stores an EvalResult
        assert evaluated.conditions["policy"].episodes == 4 and evaluated.world == "reach"
        for step in POINTS[:-1]:
            ckpt = torch.load(folder / "curve" / f"step-{step}.ckpt", weights_only=True, map_location="cpu")
            assert ckpt["global_step"] == step and (folder / f"eval-step-{step}" / "result.json").is_file()
    frozen = json.loads((cwd / "out" / "policy-resnet-frozen-seed0" / "result.json").read_text())
    tuned = json.loads((cwd / "out" / "policy-resnet-fine-tuned-seed0" / "result.json").read_text())
    assert frozen["encoder_params"] == tuned["encoder_params"]
    assert frozen["trainable_params"] < tuned["trainable_params"]  # frozen means the encoder does not train


def test_the_wandb_report_holds_the_comparison_table(run):
    cwd, _ = run
    files = list((cwd / "out" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    logged = logged_metrics(files[0])
    assert logged["lineage/results/_type"] == ["table-file"] and logged["lineage/success/_type"] == ["image-file"]
    table = json.loads((files[0].parent / "files" / logged["lineage/results/path"][0]).read_text())
    assert [row[0] for row in table["data"]] == [*ARMS, "expert", "random"]


def test_report_json_holds_every_run_point_and_verdict(run):
    cwd, _ = run
    data = json.loads((cwd / "out" / "report.json").read_text())
    assert data["schema"] == SCHEMA and data["preset"] == "tiny" and data["seeds"] == SEEDS
    assert data["settings"]["steps"] == 4 and data["settings"]["seeds"] == 2
    env = data["environment"]
    assert env["packages"]["torch"] == torch.__version__ and "git_commit" in env
    assert env["side_by_side"] == 2 and env["threads"] == 1  # the tiny preset's runs: two at a time, one thread each
    assert [a["label"] for a in data["arms"]] == ARMS
    for arm in data["arms"]:
        assert set(arm["success"]) == {"mean", "low", "high"}
        assert arm["success"]["low"] <= arm["success"]["mean"] <= arm["success"]["high"]
        assert [r["seed"] for r in arm["runs"]] == SEEDS
        for r in arm["runs"]:
            assert [p["step"] for p in r["points"]] == POINTS
            for p in r["points"]:
                assert set(p) == {"step", "frames", "seconds", "train_macs", "successes", "episodes", "episode_success"}
                assert p["frames"] == 16 * p["step"] and p["train_macs"] == p["frames"] * arm["encoder_macs"]
                assert p["episodes"] == len(p["episode_success"]) == 4 and p["successes"] == sum(p["episode_success"])
    assert set(data["baselines"]) == {"expert", "random"}
    for b in data["baselines"].values():
        assert set(b) == {"successes", "episodes", "episode_success"}
        assert b["episodes"] == len(b["episode_success"]) == 4 and b["successes"] == sum(b["episode_success"])
    pairs = {(c["a"], c["b"]) for c in data["comparisons"]}
    assert {("ResNet fine-tuned", "ResNet scratch"), ("ResNet scratch", "ViT scratch")} <= pairs
    assert ("ViT scratch", "mobilenetv3_small_100") in pairs
    for c in data["comparisons"]:
        assert c["verdict"] in VERDICTS and 0 <= c["probability_of_improvement"] <= 1
        d = c["difference"]
        assert (c["verdict"] == "no detectable difference") == (d["low"] <= 0 <= d["high"])
    assert "| verdict |" in (cwd / "out" / "report.md").read_text()


def test_learning_curves_reach_the_png_and_wandb(run):
    cwd, _ = run
    assert (cwd / "out" / "curves.png").stat().st_size > 1000
    (file,) = (cwd / "out" / "wandb").glob("offline-run-*/run-*.wandb")
    logged = logged_metrics(file)
    assert logged["lineage/curves/_type"] == ["table-file"] and logged["lineage/curves_figure/_type"] == ["image-file"]
    table = json.loads((file.parent / "files" / logged["lineage/curves/path"][0]).read_text())
    assert table["columns"] == ["encoder", "step", "frames", "train_macs", "success", "low", "high"]
    assert [row[:2] for row in table["data"]] == [[arm, step] for arm in ARMS for step in POINTS]


def test_a_seed_repeats_exactly_and_another_seed_differs(run, tmp_path):
    """The same arm and seed trained again in this process gives the same weights as the pipeline's run."""
    from recipes.lineage.presets import PRESETS, RESNET, Arm
    from recipes.lineage.work import train_policy

    cwd, _ = run
    out = cwd / "out"
    preset = replace(PRESETS["tiny"], image_size=32, episodes=20, steps=4, batch_size=16, seeds=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the pipeline ran it (one thread per run): sums in another order round otherwise
    try:
        arm = Arm("ResNet scratch", *RESNET, "scratch")
        work = train_policy(arm, preset, 1, out / "demos", None, {"group": "test"}, {"logger": False})
        again = work(tmp_path, None)
    finally:
        torch.set_num_threads(threads)

    def weights(path):
        return torch.load(path, weights_only=True, map_location="cpu")["state_dict"]

    first = weights(out / "policy-resnet-scratch-seed1" / "policy.ckpt")
    repeat, other = weights(again["checkpoint"]), weights(out / "policy-resnet-scratch-seed0" / "policy.ckpt")
    assert all(torch.equal(first[k], repeat[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_a_rerun_skips_finished_stages_and_resumes_an_interrupted_one(run, env):
    cwd, _ = run
    out = cwd / "out"
    before = {p: p.stat().st_mtime for p in out.glob("*/*.ckpt")}
    (out / "policy-vit-scratch-seed1" / "result.json").unlink()  # as if killed after its last checkpoint
    result = lineage(cwd, env, "--trainer.accelerator", "cpu", "--trainer.devices", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    # the demos, two pretrainings per seed, the other policies, every evaluation at every curve point, the baselines
    runs = len(ARMS) * len(SEEDS)
    assert result.stdout.count("done before") == 1 + 2 * len(SEEDS) + (runs - 1) + runs * len(POINTS) + 1
    assert "policy-vit-scratch-seed1 (resuming from" in result.stdout
    # Lightning did resume, not restart (its output is in the stage's log.txt, no longer on the terminal)
    assert "Restored all states from the checkpoint" in (out / "policy-vit-scratch-seed1" / "log.txt").read_text()
    resumed = json.loads((out / "policy-vit-scratch-seed1" / "result.json").read_text())
    assert resumed["step"] == 4 and resumed["train_seconds"] > 0  # the Timer's count survives the resume
    after = {p: p.stat().st_mtime for p in out.glob("*/*.ckpt")}
    changed = {p.parent.name for p in before if after[p] != before[p]}
    assert changed == {"policy-vit-scratch-seed1"}


def test_a_different_setting_in_the_same_folder_is_refused(run, env):
    cwd, _ = run
    result = lineage(cwd, env, "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.max_time", "1")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "was run with another configuration" in result.stderr and "--out" in result.stderr


def test_new_evaluation_settings_reuse_the_trained_policies(run, env):
    cwd, _ = run
    result = lineage(cwd, env, "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--eval-episodes", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    # the demos, pretraining and training are reused; every evaluation runs anew
    assert result.stdout.count("done before") == 1 + 2 * len(SEEDS) + len(ARMS) * len(SEEDS)
    assert "same 3 episodes" in (cwd / "out" / "report.md").read_text()


def test_runs_go_side_by_side_only_where_each_trainer_is_one_process(monkeypatch):
    from recipes.lineage import single_process

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert single_process({"accelerator": "cpu", "devices": 1}) and single_process({"devices": "1"})
    assert not single_process({"devices": 2}) and not single_process({"strategy": "ddp", "devices": 1})
    assert not single_process({"devices": 1, "num_nodes": 2})
    monkeypatch.setenv("WORLD_SIZE", "2")  # a rank that torchrun started
    assert not single_process({"devices": 1})


def test_arms_trains_only_the_policies_asked_for():
    from recipes.lineage.presets import PRESETS, arms

    preset = replace(PRESETS["tiny"], arms=("ViT scratch", "ResNet scratch"))
    assert [arm.label for arm in arms(preset, None, None)] == ["ResNet scratch", "ViT scratch"]


def test_another_world_brings_its_own_arms_and_head():
    from recipes.lineage.presets import FILM_CNN, PRESETS, arms, policy_settings

    babyai = replace(PRESETS["tiny"], world="babyai:GoToRedBall", arms=())
    compared = arms(babyai, None, None)
    assert [arm.label for arm in compared] == [FILM_CNN, "ResNet scratch", "ViT scratch"]
    assert all(arm.weights is None for arm in compared)  # the shapes are Reach's objects: no pretraining elsewhere
    assert compared[2].kwargs["patch_size"] == 8  # one patch per BabyAI cell of the 56x56 view
    settings = policy_settings(babyai)
    assert (settings["head"], settings["image_size"], settings["world"]) == ("categorical", 56, "babyai:GoToRedBall")
    reach = policy_settings(PRESETS["tiny"])
    assert (reach["head"], reach["image_size"], reach["world_options"]["image_size"]) == ("continuous", 64, 64)
    grid = policy_settings(replace(PRESETS["tiny"], trunk_depth=2, image_tokens="grid"))
    assert (grid["depth"], grid["image_tokens"]) == (2, "grid")  # the preset's trunk, not TRUNK's, reaches the policy


def test_the_timm_arm_is_timms_model_even_where_bridge_has_one_of_that_name():
    from recipes.lineage.presets import PRESETS, arms

    (arm,) = arms(replace(PRESETS["tiny"], timm="resnet18", arms=("resnet18",)), None, None)
    assert (arm.label, arm.encoder) == ("resnet18", "timm:resnet18")  # not bridge's own resnet18


def stage_folder(tmp_path: Path, planted=None) -> tuple[Path, list]:
    """A finished stage ``s`` under ``tmp_path`` with a ``checkpoints/last.ckpt`` (``planted`` if given), and the
    list of the ``resume`` values its work is called with from now on."""
    from recipes.resumable import run_stage

    calls = []
    run_stage(tmp_path, "s", {"a": 1}, lambda folder, resume: {"value": 1}, announce=False)
    (tmp_path / "s" / "checkpoints").mkdir()
    torch.save({"state_dict": {}} if planted is None else planted, tmp_path / "s" / "checkpoints" / "last.ckpt")
    return tmp_path / "s", calls


def work(calls):
    return lambda folder, resume: calls.append(resume) or {"value": 1}


def test_a_damaged_stage_json_is_refused_not_resumed_under_another_configuration(tmp_path):
    from bridge.errors import CorruptFileError
    from recipes.resumable import run_stage

    folder, calls = stage_folder(tmp_path)
    (folder / "stage.json").write_text('{"a": ')  # truncated
    with pytest.raises(CorruptFileError, match=r"stage.json is damaged.*delete the folder .*s to run stage 's' again"):
        run_stage(tmp_path, "s", {"a": 2}, work(calls), announce=False)
    assert calls == []
    run_stage(tmp_path, "s", {"a": 2}, work(calls), cheap=True, announce=False)  # an evaluation just runs again
    assert calls == [str(folder / "checkpoints" / "last.ckpt")]


def test_a_planted_pickle_as_last_ckpt_is_refused_naming_the_file(tmp_path):
    import argparse

    from bridge.errors import CorruptFileError
    from recipes.resumable import run_stage

    folder, calls = stage_folder(tmp_path, planted=argparse.Namespace(x=1))
    (folder / "result.json").unlink()  # as if interrupted: the stage would resume from last.ckpt
    last = folder / "checkpoints" / "last.ckpt"
    with pytest.raises(CorruptFileError, match=rf"cannot resume: refusing to load {re.escape(str(last))}.*delete"):
        run_stage(tmp_path, "s", {"a": 1}, work(calls), announce=False)
    assert calls == []


@pytest.mark.parametrize("stored", ["{}", "[]", '{"other": 1}'])
def test_a_stored_result_without_what_is_read_of_it_runs_its_stage_again(tmp_path, stored, capsys):
    from recipes.resumable import run_stage

    folder, calls = stage_folder(tmp_path)
    (folder / "result.json").write_text(stored)
    assert run_stage(tmp_path, "s", {"a": 1}, work(calls), keys=("value",), announce=False) == {"value": 1}
    assert len(calls) == 1 and "running its stage again" in (folder / "log.txt").read_text()
    assert json.loads((folder / "result.json").read_text()) == {"value": 1}


def test_the_pipeline_in_another_world(tmp_path, env):
    from recipes.lineage.presets import FILM_CNN

    cmd = [sys.executable, "-m", "bridge", "run", "lineage", "--world", "babyai:GoToRedBallGrey", "--out", "out",
           "--episodes", "12", "--steps", "2", "--seeds", "1", "--eval-episodes", "3", "--eval-seeds", "1",
           "--batch-size", "8", "--curve-points", "2"]  # fmt: skip
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "episodes of babyai:GoToRedBallGrey" in report
    assert set(success_column(report)) == {FILM_CNN, "ResNet scratch", "ViT scratch", "expert", "random"}
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["settings"]["world"] == "babyai:GoToRedBallGrey"
    pairs = {(c["a"], c["b"]) for c in data["comparisons"]}
    assert pairs == {("ResNet scratch", "ViT scratch"), ("ResNet scratch", FILM_CNN), ("ViT scratch", FILM_CNN)}
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("pretrain")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--world", "babyai:GoToNowhere"], "--world: no BabyAI level 'GoToNowhere'"),
        (["--image-size", "12"], "--image-size must be a multiple of 8"),
        (["--steps", "0"], "Not of type PositiveInt: 0"),
        (["--trainer.max_stepz", "3"], "unrecognized arguments: --trainer.max_stepz"),
        (["--vit-weights", "missing.safetensors"], "--vit-weights missing.safetensors is not a file"),
        (["--arms", "ResNet scratchy"], "--arms: no policy 'ResNet scratchy' here; choose from ResNet frozen"),
        (["--seed", "-1"], "Not of type NonNegativeInt: -1"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path, env, args, message):
    result = lineage(tmp_path, env, *args)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_whole_pipeline_on_two_ddp_processes(tmp_path, env):
    without_vit_pretraining = [a for a in ARMS if a != "ViT fine-tuned"]
    result = lineage(tmp_path, env, "--no-vit-pretraining", "--seeds", "1", "--trainer.accelerator", "cpu",
                     "--trainer.devices", "2", "--trainer.strategy", "ddp", arms=without_vit_pretraining)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    success = success_column((tmp_path / "out" / "report.md").read_text())
    assert list(success) == [*without_vit_pretraining, "expert", "random"]
    folder = tmp_path / "out" / "policy-resnet-scratch-seed0"
    assert torch.load(folder / "policy.ckpt", weights_only=True, map_location="cpu")["global_step"] == 4
    assert torch.load(folder / "curve" / "step-2.ckpt", weights_only=True, map_location="cpu")["global_step"] == 2
    # both ranks joined (Lightning says so in the log.txt of the stage that started the process group)
    logs = "".join(log.read_text() for log in (tmp_path / "out").rglob("log.txt"))
    assert "MEMBER: 2/2" in logs
