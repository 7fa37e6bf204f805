"""``python -m bridge run lineage`` end to end on a sliver of everything: report, resumable stages, DDP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from wandb_records import logged_metrics

ROOT = Path(__file__).resolve().parents[1]
# 32x32 frames, a few demonstrations and steps: the pipeline's plumbing, not its numbers.
MICRO = ["--image-size", "32", "--shapes", "48", "12", "12", "--pretrain-epochs", "1", "--episodes", "20",
         "--steps", "4", "--eval-episodes", "4", "--eval-seeds", "1", "--batch-size", "16",
         "--vit-pretraining"]  # fmt: skip
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


def lineage(cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bridge", "run", "lineage", "--out", "out", *MICRO, *args]
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
    assert len(folders) == len(ARMS)
    for folder in folders:
        assert torch.load(folder / "policy.ckpt", weights_only=True, map_location="cpu")["global_step"] == 4
        assert (folder / "eval" / "result.json").is_file() and (folder / "eval" / "rollouts.gif").is_file()
    frozen = json.loads((cwd / "out" / "policy-resnet-frozen" / "result.json").read_text())
    tuned = json.loads((cwd / "out" / "policy-resnet-fine-tuned" / "result.json").read_text())
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


def test_a_rerun_skips_finished_stages_and_resumes_an_interrupted_one(run, env):
    cwd, _ = run
    out = cwd / "out"
    before = {p: p.stat().st_mtime for p in out.glob("*/*.ckpt")}
    (out / "policy-vit-scratch" / "result.json").unlink()  # as if killed after its last checkpoint
    result = lineage(cwd, env, "--trainer.accelerator", "cpu", "--trainer.devices", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    # two pretrainings, the other policies, every evaluation, the baselines
    assert result.stdout.count("done before") == 2 + (len(ARMS) - 1) + len(ARMS) + 1
    assert "policy-vit-scratch (resuming from" in result.stdout
    assert "Restored all states from the checkpoint" in result.stderr  # Lightning did resume, not restart
    resumed = json.loads((out / "policy-vit-scratch" / "result.json").read_text())
    assert resumed["step"] == 4 and resumed["train_seconds"] > 0  # the Timer's count survives the resume
    after = {p: p.stat().st_mtime for p in out.glob("*/*.ckpt")}
    changed = {p.parent.name for p in before if after[p] != before[p]}
    assert changed == {"policy-vit-scratch"}


def test_a_different_setting_in_the_same_folder_is_refused(run, env):
    cwd, _ = run
    result = lineage(cwd, env, "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.max_time", "1")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "was run with another configuration" in result.stderr and "--out" in result.stderr


def test_new_evaluation_settings_reuse_the_trained_policies(run, env):
    cwd, _ = run
    result = lineage(cwd, env, "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--eval-episodes", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("done before") == 2 + len(ARMS)  # pretraining and training; every evaluation anew
    assert "same 3 episodes" in (cwd / "out" / "report.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-size", "12"], "--image-size must be a multiple of 8"),
        (["--steps", "0"], "Not of type PositiveInt: 0"),
        (["--trainer.max_stepz", "3"], "unrecognized arguments: --trainer.max_stepz"),
        (["--vit-weights", "missing.safetensors"], "--vit-weights missing.safetensors is not a file"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path, env, args, message):
    result = lineage(tmp_path, env, *args)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_whole_pipeline_on_two_ddp_processes(tmp_path, env):
    result = lineage(tmp_path, env, "--no-vit-pretraining", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
                     "--trainer.strategy", "ddp")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    success = success_column((tmp_path / "out" / "report.md").read_text())
    assert list(success) == [a for a in ARMS if a != "ViT fine-tuned"] + ["expert", "random"]
    ckpt = torch.load(tmp_path / "out" / "policy-resnet-scratch" / "policy.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == 4
    assert "MEMBER: 2/2" in result.stderr  # both ranks joined every stage
