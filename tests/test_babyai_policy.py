"""A BabyAI policy end to end: configs/vla_babyai_*.yaml through BridgeCLI (bot demos, a frame history, the
categorical head), then ``vla eval`` with the bot as ceiling, random as floor and the language ablations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from bridge.lit.lightning_cli import BridgeCLI
from bridge.vla.commands import register
from bridge.vla.evaluation.result import EvalResult
from bridge.vla.policy.loading import load_policy
from bridge.vla.worlds import get_world

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--model.init_args.policy.n_obs_steps", "2", "--data.init_args.world_options", '{"n_obs_steps": 2}',
    "--model.init_args.policy.dim", "32", "--model.init_args.policy.depth", "1",
    "--model.init_args.policy.text_dim", "16", "--model.init_args.policy.text_layers", "1",
    "--data.init_args.episodes", "12", "--data.init_args.val_fraction", "0.2", "--data.init_args.batch_size", "16",
    "--model.init_args.rollout_episodes", "2", "--model.init_args.warmup_steps", "2",
    "--trainer.max_steps", "4", "--trainer.max_time", "null", "--trainer.logger", "false",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
]  # fmt: skip
FILM = ["--model.init_args.policy.encoder_kwargs", '{"width": 16}']
CONFIGS = {  # config -> (its level, tiny sizes)
    "film": ("GoToRedBall", FILM),
    "gotolocal": ("GoToLocal", FILM),
    "pickuploc": ("PickupLoc", FILM),
    "vit": (
        "GoToRedBall",
        [
            "--model.init_args.policy.encoder_kwargs",
            '{"img_size": 56, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}',
        ],
    ),
}


@pytest.mark.parametrize("config", list(CONFIGS))  # resnet: the FiLM config, another encoder
def test_each_babyai_config_trains_a_policy_that_acts_in_the_level(config, tmp_path):
    level, tiny_encoder = CONFIGS[config]
    BridgeCLI(
        args=[
            "fit", "--config", str(ROOT / f"configs/vla_babyai_{config}.yaml"), *TINY, *tiny_encoder,
            "--data.init_args.path", str(tmp_path / "demos"), "--trainer.default_root_dir", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["policy_config"]["world"] == f"babyai:{level}"
    assert saved["policy_config"]["head"] == "categorical" and saved["policy_config"]["action_dim"] == 7
    assert saved["policy_config"]["world_options"]["n_obs_steps"] == 2
    policy = load_policy(checkpoint)
    assert policy.config.n_obs_steps == 2 and policy.frame_pos.shape == (2, 32)
    if config != "film":
        return
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))

    def vla_eval(*options: str) -> EvalResult:
        args = parser.parse_args(
            ["vla", "eval", "--ckpt", str(checkpoint), "--episodes", "6", "--seeds", "1", "--video", "none",
             "--no-wandb", *options]
        )  # fmt: skip
        return args.func(args)

    vla_eval("--out", str(tmp_path / "eval"))
    results = json.loads((tmp_path / "eval" / "results.json").read_text())["conditions"]
    assert set(results) == {"policy", "blank", "shuffled", "expert", "random"}
    assert results["expert"]["success_rate"] == 1.0  # the bot: BabyAI's ceiling
    assert results["random"]["success_rate"] < 1.0
    # Drawn actions: their own folder beside the run's argmax results, and the same numbers when run again.
    drawn = vla_eval("--temperature", "1", "--conditions", "policy")
    saved = json.loads((tmp_path / "run" / "eval" / "last_temperature1" / "results.json").read_text())
    assert saved["temperature"] == 1.0 and saved["conditions"] == drawn.to_dict()["conditions"]
    assert vla_eval("--temperature", "1", "--conditions", "policy").conditions == drawn.conditions
    # Validation scenes: others than the reported ones, to choose settings by.
    held = vla_eval("--scenes", "validation", "--conditions", "expert", "--out", str(tmp_path / "val")).episode_seeds
    reported = json.loads((tmp_path / "eval" / "results.json").read_text())["episode_seeds"]
    assert held[0] == get_world(f"babyai:{level}").validation_seed_offset and not set(held) & set(reported)
    # The two ways of acting, compared episode by episode on the same scenes.
    args = parser.parse_args(
        ["vla", "compare", "--arm", "argmax", str(tmp_path / "eval" / "results.json"),
         "--arm", "drawn", str(tmp_path / "run" / "eval" / "last_temperature1" / "results.json")]
    )  # fmt: skip
    arms = args.func(args)["arms"]
    assert arms["argmax"]["mean"] == pytest.approx(results["policy"]["success_rate"])
    assert arms["drawn"]["mean"] == pytest.approx(drawn.conditions["policy"].success_rate)


def test_bf16_autocast_trains_a_resnet_policy_and_keeps_float32_weights(tmp_path):
    """``--trainer.precision bf16-mixed`` on the CPU (faster with AMX: benchmarks/cpu_bf16.py) runs the policy's
    forward pass in bfloat16, the ResNet's convolutions and the trunk's attention among it, and saves float32
    weights that ``vla eval`` loads as any others."""
    BridgeCLI(
        args=[
            "fit", "--config", str(ROOT / "configs/vla_babyai_gotolocal.yaml"), *TINY,
            "--model.init_args.policy.encoder", "resnet20",
            "--model.init_args.policy.encoder_kwargs", '{"stem": "imagenet", "layers": [1, 1], "widths": [8, 16]}',
            "--trainer.precision", "bf16-mixed",
            "--data.init_args.path", str(tmp_path / "demos"), "--trainer.default_root_dir", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    weights = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert {w.dtype for w in weights.values() if w.is_floating_point()} == {torch.float32}
    policy = load_policy(checkpoint)
    assert policy.config.encoder == "resnet20"
    assert all(torch.isfinite(p).all() for p in policy.parameters())
