"""The main job's presets: which encoders they compare and at what size, the gpu preset checked on a CPU, and the
answer written into the README."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from bridge import create_model
from bridge.analysis.summary import count_macs
from bridge.errors import ConfigError
from bridge.vla import EvalResult
from recipes.lineage.presets import PRESETS, arms, resnet, vit
from recipes.lineage.report import README_END, README_START, capacity_notes, check_readme, publish


def size(encoder: str, kwargs: dict, image_size: int) -> tuple[int, int]:
    model = create_model(encoder, num_classes=0, **kwargs).eval()
    return sum(p.numel() for p in model.parameters()), count_macs(model, torch.zeros(1, 3, image_size, image_size))


def test_the_tiny_preset_compares_resnet_and_vit_each_pretrained_and_from_scratch():
    labels = [arm.label for arm in arms(PRESETS["tiny"], None, None)]
    assert sorted(labels) == ["ResNet fine-tuned", "ResNet scratch", "ViT fine-tuned", "ViT scratch"]
    assert PRESETS["tiny"].seeds == 3 and PRESETS["tiny"].pretrain_vit


@pytest.mark.parametrize("name", ["tiny", "cpu", "gpu"])
def test_the_resnet_and_the_vit_are_matched_in_params_or_macs(name):
    preset = PRESETS[name]
    (params_r, macs_r), (params_v, macs_v) = (
        size(*resnet(preset.resnet_widths), preset.image_size), size(*vit(preset.image_size, preset.vit_width),
                                                                     preset.image_size)
    )  # fmt: skip
    ratios = max(params_r, params_v) / min(params_r, params_v), max(macs_r, macs_v) / min(macs_r, macs_v)
    assert min(ratios) <= 1.5, (name, ratios)


def test_capacity_notes_name_the_pairs_more_than_three_times_apart():
    arms_ = [{"label": "small", "encoder": "a", "encoder_params": 100, "encoder_macs": 1000},
             {"label": "near", "encoder": "b", "encoder_params": 250, "encoder_macs": 1200},
             {"label": "big", "encoder": "c", "encoder_params": 400, "encoder_macs": 1000}]  # fmt: skip
    notes = capacity_notes(arms_)
    assert notes == ["- small and big differ 4.0x in params and 1.0x in MACs."]


def test_publish_replaces_only_the_block_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{README_START}\nold table\n{README_END}\nafter\n")
    figure = tmp_path / "success.png"
    figure.write_bytes(b"png")
    data = {
        "preset": "tiny", "seeds": [0, 1, 2],
        "environment": {"processor": "a CPU", "machine": "x86_64", "side_by_side": 2, "threads": 1},
        "arms": [{"label": "ResNet scratch", "init": "scratch", "encoder_params": 67_000, "encoder_macs": 9_200_000,
                  "success": {"mean": 0.5, "low": 0.4, "high": 0.6}}],
        "comparisons": [{"a": "A", "b": "B", "difference": {"mean": 0.1, "low": -0.05, "high": 0.2},
                         "verdict": "no detectable difference"}],
    }  # fmt: skip

    class Baseline:
        ci95, success_rate = (0.9, 1.0), 1.0

    publish(readme, data, {"expert": Baseline(), "random": Baseline()}, figure, tmp_path / "report.md")
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n") and text.endswith(f"{README_END}\nafter\n")
    assert "old table" not in text and "| ResNet scratch | scratch | 0.07 M | 9.2 M | 50% [40, 60] |" in text
    assert "A - B: +10% [-5, +20], **no detectable difference**" in text
    assert (tmp_path / "docs" / "images" / "demo.png").read_bytes() == b"png"
    with pytest.raises(ConfigError, match="demo-results:start"):
        check_readme(tmp_path / "report.md")  # no such file, or no markers: refused before any work


def test_lineage_refuses_a_readme_without_the_block_before_any_work(tmp_path):
    (tmp_path / "notes.md").write_text("no markers here\n")
    cmd = [sys.executable, "-m", "bridge", "run", "lineage", "--readme", "notes.md", "--out", "out"]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2 and "--readme notes.md must be a file holding the lines" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_gpu_preset_runs_on_a_cpu_with_smoke(tmp_path):
    """Its arms' models and its bf16 Trainer on a handful of examples, so the preset breaks here and not on a GPU."""
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf"), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bridge", "run", "lineage", "--preset", "gpu", "--smoke", "--trainer.accelerator",
           "cpu", "--arms", "ResNet fine-tuned", "ViT scratch"]  # fmt: skip
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "runs" / "lineage" / "gpu-smoke" / "report.json").read_text())
    assert report["settings"]["trainer"] == {"precision": "bf16-mixed"} and report["settings"]["steps"] == 2
    assert {arm["label"]: arm["encoder_params"] for arm in report["arms"]} == {
        "ResNet fine-tuned": 1_044_032, "ViT scratch": 1_829_568}  # fmt: skip
    policy = tmp_path / "runs/lineage/gpu-smoke/policy-vit-scratch-seed0"
    assert json.loads((policy / "stage.json").read_text())["trainer"]["precision"] == "bf16-mixed"
    evaluated = EvalResult.from_json(policy / "eval" / "result.json")  # the result format `vla eval` writes
    assert evaluated.world == "reach" and evaluated.conditions["policy"].episodes == 2
    assert evaluated.checkpoint.endswith("policy-vit-scratch-seed0/policy.ckpt")


def test_a_yaml_preset_sets_any_field_on_top_of_its_base(tmp_path):
    from recipes.lineage import build_parser, plan

    path = tmp_path / "wide.yaml"
    path.write_text(
        "base: cpu\nvit_width: 96\ncurve_episodes: 5\nnum_workers: 1\nresnet_widths: [8, 16]\n"
        "trunk_depth: 3\nimage_tokens: keypoints\n"
    )
    parser = build_parser()
    name, preset, out = plan(parser, parser.parse_args(["--preset", str(path), "--steps", "7"]))
    assert (name, out.as_posix()) == ("wide", "runs/lineage/wide")
    assert (preset.vit_width, preset.curve_episodes, preset.num_workers, preset.resnet_widths) == (96, 5, 1, (8, 16))
    assert (preset.trunk_depth, preset.image_tokens) == (3, "keypoints")
    assert (preset.steps, preset.episodes) == (7, PRESETS["cpu"].episodes)  # flags on top, the rest from the base


@pytest.mark.parametrize(
    "text, says",
    [
        ("vit_wdth: 96\n", r"does not accept option 'vit_wdth'.*the fields are world, image_size"),
        ("vit_width: wide\n", r"preset.vit_width.*Expected a <class 'int'>"),
        ("image_tokens: dots\n", r"preset.image_tokens.*Expected a typing.Literal\['grid', 'pooled', 'keypoints'\]"),
        ("trunk_depth: 0\n", r"trunk_depth must be 1 or more, got 0; set trunk_depth in the file"),
        ("base: huge\n", r"base 'huge' is not a preset; choose babyai, cpu, gpu, tiny"),
        ("- steps\n", r"holds a list, not a mapping"),
    ],
)
def test_a_bad_yaml_preset_is_refused_naming_the_field(tmp_path, capsys, text, says):
    from recipes.lineage import build_parser, plan

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    parser = build_parser()
    with pytest.raises(SystemExit):
        plan(parser, parser.parse_args(["--preset", str(path)]))
    assert re.search(says, capsys.readouterr().err, re.S)


def test_every_curve_point_is_read_on_the_same_scenes():
    from bridge.vla.evaluation.result import ConditionResult
    from recipes.lineage.report_data import curve

    # Two evaluation seeds: the earlier point on the first 2 scenes of each, the last on all 4, whose later scenes
    # fail. Read on all 4 the curve would fall from 100% to 50%; on the same scenes it stays at 100%.
    early = ConditionResult("policy", [1, 1, 1, 1], [5] * 4, seeds=2)
    last = ConditionResult("policy", [1, 1, 0, 0, 1, 1, 0, 0], [5] * 8, seeds=2)
    run = {"points": [early, last],
           "train": {"curve": [{"step": 5}, {"step": 10}], "frames_per_step": 4, "encoder_macs": 3}}  # fmt: skip
    points = curve([run, run])
    assert [p["mean"] for p in points] == [1.0, 1.0]
    assert [(p["step"], p["frames"], p["train_macs"]) for p in points] == [(5, 20, 60), (10, 40, 120)]
