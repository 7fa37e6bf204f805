"""Receptive fields, gradient flow, the bottleneck comparison and the lineage recipes, on tiny settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from bridge import create_model
from bridge.analysis.gradient_flow import blocks, gradient_flow
from bridge.analysis.receptive_field import (
    compare_stacks,
    gradient_map,
    measured_size,
    receptive_field,
    sequential_receptive_field,
)
from bridge.analysis.summary import summarize
from wandb_records import logged_run


def test_stacked_3x3_convolutions_see_what_one_bigger_convolution_sees():
    assert receptive_field([(3, 1)] * 2) == 5
    assert receptive_field([(3, 1)] * 3) == 7
    two, three = compare_stacks(3, kernel=3, channels=8)[1:]
    assert (two.stacked_weights, two.single_weights) == (2 * 9 * 64, 25 * 64)
    assert (three.stacked_weights, three.single_weights) == (3 * 9 * 64, 49 * 64)


def test_measured_receptive_field_matches_the_analytic_one():
    stack = nn.Sequential(*[nn.Conv2d(2, 2, 3, padding=1) for _ in range(3)])
    assert (
        measured_size(gradient_map(stack, "2", (2, 21, 21), samples=2)) == 7 == sequential_receptive_field(stack, "2")
    )
    vgg = create_model("vgg11")  # conv, pool, conv, pool: 3 + 1 + 2*2 = 8 ... up to 3x3/1 after 2 pools
    for layer in ("features.0", "features.3", "features.8"):
        measured = measured_size(gradient_map(vgg, layer, (3, 64, 64), samples=2))
        assert measured == sequential_receptive_field(vgg, layer), layer


def test_analytic_receptive_field_follows_residual_branches():
    # resnet20: 3x3 stem, then 3 stages of 3 basic blocks (two 3x3 each); stages 2 and 3 start with stride 2.
    resnet = create_model("resnet20")
    for layer, expected in [("layer1.0", 7), ("layer1", 15), ("layer2.0.branch", 21), ("layer2", 37), ("layer3", 81)]:
        assert sequential_receptive_field(resnet, layer) == expected, layer
        if layer.startswith("layer") and "." not in layer:  # the three stages, measured too
            measured = measured_size(gradient_map(resnet, layer, (3, 96, 96), samples=2))
            assert measured == expected, (layer, measured)
    # A projection shortcut (option C, 1x1 with the stride) never sees more than its branch.
    assert sequential_receptive_field(create_model("resnet20", shortcut="C"), "layer3") == 81
    with pytest.raises(KeyError, match="no layer 'layer9'"):
        sequential_receptive_field(resnet, "layer9")


def test_block_summary_splits_plain_stacks_at_their_pools_and_fc_layers():
    with torch.device("meta"):
        rows = summarize(create_model("lenet5"), (1, 32, 32), depth="block").rows
        blocks = summarize(create_model("resnet20"), (3, 32, 32), depth="block").rows
    assert [(r.name, r.output_shape[1:], r.params) for r in rows] == [
        ("features.conv1-pool1", (6, 14, 14), 156),
        ("features.conv2-pool2", (16, 5, 5), 2_416),
        ("classifier.flatten-act1", (120,), 48_120),
        ("classifier.fc2-act2", (84,), 10_164),
        ("classifier.fc3", (10,), 850),
    ]
    assert [r.name for r in blocks if r.name.startswith("layer")] == [
        f"layer{i}.{j}" for i in (1, 2, 3) for j in range(3)
    ]


def test_residual_blocks_pass_more_gradient_to_the_first_block_than_plain_ones():
    torch.manual_seed(0)
    batch = [(torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,)))]
    spread = {}
    for name in ("plain56", "resnet56"):
        torch.manual_seed(0)
        model = create_model(name, in_chans=1)
        norms = list(gradient_flow(model, batch, steps=1)["init"].values())
        assert len(norms) == 27 == len(blocks(model))
        spread[name] = max(norms) / min(norms)
    # Plain: the product of 27 block Jacobians spreads the norms over orders of magnitude; with skips they stay close.
    assert spread["plain56"] > 10 * spread["resnet56"]


def test_blocks_fall_back_to_layers_for_networks_without_skips():
    assert list(blocks(create_model("lenet5"))) == ["features.conv1", "features.conv2", "classifier.fc1",
                                                     "classifier.fc2", "classifier.fc3"]  # fmt: skip


# -- commands --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return {**os.environ, "HF_DATASETS_CACHE": str(tmp_path_factory.mktemp("hf")), "WANDB_MODE": "offline"}


def bridge(*args: str, cwd: Path, env: dict) -> str:
    result = subprocess.run([sys.executable, "-m", "bridge", *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_receptive_field_command_writes_table_and_heat_map(tmp_path, env):
    out = bridge("analyze", "receptive-field", "--model", "lenet5", "--layer", "features.conv2",
                 "--out", "a", "--samples", "2", cwd=tmp_path, env=env)  # fmt: skip
    assert "| 3 x 3x3 | 7x7 |" in out
    assert "measured 14x14, analytic 14x14" in out  # 5x5 conv, 2x2 pool, 5x5 conv: 1 + 4 + 1 + 4*2
    assert (tmp_path / "a" / "receptive_field_lenet5_features.conv2.png").stat().st_size > 0


def test_bottleneck_command_computes_the_saving(tmp_path, env):
    out = bridge("analyze", "bottleneck", cwd=tmp_path, env=env)
    # 1x1 256->64, 3x3 64->64, 1x1 64->256 against two 3x3 256->256
    assert "| 69,632 |" in out and "| 1,179,648 |" in out
    assert "16.9x fewer weights" in out


def test_gradient_flow_command(tmp_path, env):
    out = bridge("analyze", "gradient-flow", "resnet20", "--twins", "--steps", "2", "--out", "g",
                 cwd=tmp_path, env=env)  # fmt: skip
    assert re.search(r"\| resnet20 \(noskip\) \| after 2 steps \| 9 \|", out)
    assert (tmp_path / "g" / "gradient_flow.png").is_file() and (tmp_path / "g" / "gradient_flow.md").is_file()


def test_degradation_recipe_end_to_end_on_a_sliver_of_data(tmp_path, env):
    out = bridge("run", "degradation", "--epochs", "1", "--trainer.limit_train_batches", "1",
                 "--trainer.limit_val_batches", "1", "--out", "d", "--trainer.accelerator", "cpu",
                 "--trainer.devices", "1", cwd=tmp_path, env=env)  # fmt: skip
    curves = json.loads((tmp_path / "d" / "cpu" / "curves.json").read_text())
    assert set(curves) == {"plain-20", "plain-56", "ResNet-20", "ResNet-56", "ViT-12", "ViT-12 no skip"}
    assert all(len(c["train"]) == 1 and len(c["test"]) == 1 for c in curves.values())
    report = (tmp_path / "d" / "cpu" / "degradation.md").read_text()
    assert report.count("\n| ") == 8 and "plain-56 ends with a higher training error" in report
    assert (tmp_path / "d" / "cpu" / "degradation.png").is_file()
    runs = [logged_run(f) for f in (tmp_path / "d" / "cpu" / "wandb").glob("offline-run-*/run-*.wandb")]
    assert len(runs) == 6  # one W&B run per model, each saying which model and seed it is
    assert {(r["config"]["label"], r["config"]["seed"]) for r in runs} == {(label, 0) for label in curves}
    assert {(r["group"], r["job_type"]) for r in runs} == {("degradation-cpu", "train")}
    assert all({f"label:{r['config']['label']}", "seed:0"} <= set(r["tags"]) for r in runs)
    assert "ResNet-56 ends at or below ResNet-20" in out


def test_shortcuts_recipe_counts_the_projection_parameters(tmp_path, env):
    bridge("run", "shortcuts", "--models", "resnet20", "--epochs", "1", "--trainer.limit_train_batches", "2",
           "--trainer.limit_val_batches", "2", "--out", "s", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
           cwd=tmp_path, env=env)  # fmt: skip
    table = (tmp_path / "s" / "shortcuts.md").read_text()
    params = {
        opt: int(re.search(rf"\| resnet20 {opt} \| ([\d,]+) \|", table).group(1).replace(",", "")) for opt in "ABC"
    }
    digits_resnet20 = sum(p.numel() for p in create_model("resnet20", in_chans=1).parameters())
    assert params["A"] == digits_resnet20 < params["B"] < params["C"]  # option A adds no parameters
