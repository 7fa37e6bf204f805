"""Training through BridgeCLI and configs/vla_resnet.yaml, checkpoints, closed-loop evaluation and the vla CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from bridge.errors import ConfigError
from bridge.lit.classifier import ImageClassifier
from bridge.lit.lightning_cli import BridgeCLI
from bridge.vla.commands import CONDITIONS as CLI_CONDITIONS
from bridge.vla.commands import register
from bridge.vla.demos import load_demos
from bridge.vla.evaluation import closed_loop as closed_loop_module
from bridge.vla.evaluation.closed_loop import CONDITIONS, evaluate, shuffled
from bridge.vla.evaluation.result import EvalResult, wilson_interval
from bridge.vla.evaluation.video import write_video
from bridge.vla.policy.loading import load_policy
from bridge.vla.training import VLAPolicy
from bridge.vla.worlds.reach import ScriptedExpert
from bridge.vla.worlds.registry import get_world
from bridge.vla.worlds.rollout import Episode, rollouts

ROOT = Path(__file__).resolve().parents[1]
WORLD = {"image_size": 32, "num_objects": 1}  # one object: a tiny policy learns to reach it in a few seconds
TINY_POLICY = [
    "--model.init_args.policy.image_size", "32",
    "--model.init_args.policy.encoder_kwargs", '{"stem": "imagenet", "layers": [1], "widths": [8]}',
    "--model.init_args.policy.dim", "32", "--model.init_args.policy.depth", "1",
    "--model.init_args.policy.num_heads", "2",
    "--model.init_args.policy.text_dim", "16", "--model.init_args.policy.text_layers", "1",
    "--model.init_args.policy.head", "continuous",
    "--model.init_args.warmup_steps", "10",
]  # fmt: skip


def vla(*argv: str):
    """``python -m bridge vla ...`` through the same parser bridge.cli builds."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["vla", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny policy trained with ``python -m bridge fit --config configs/vla_resnet.yaml`` (in process); the
    scenes its validation rollouts ran on are in ``rollout_seeds.json``."""
    root = tmp_path_factory.mktemp("vla")
    seeds: list[int] = []

    def recording(agent, seed_list, *args, **kwargs):
        seeds.extend(seed_list)
        return rollouts(agent, seed_list, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(closed_loop_module, "rollouts", recording)
        fit_tiny_policy(root)
    (root / "rollout_seeds.json").write_text(json.dumps(seeds))
    return root


def fit_tiny_policy(root: Path) -> None:
    BridgeCLI(
        args=[
            "fit", "--config", str(ROOT / "configs/vla_resnet.yaml"), *TINY_POLICY,
            "--data.init_args.path", str(root / "demos"), "--data.init_args.episodes", "60",
            "--data.init_args.world_options", json.dumps(WORLD), "--data.init_args.val_fraction", "0.1",
            "--data.init_args.batch_size", "32", "--model.init_args.rollout_episodes", "4",
            "--trainer.max_steps", "200", "--trainer.max_time", "null", "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.default_root_dir", str(root / "run"),
        ]
    )  # fmt: skip


def test_validation_rollouts_run_on_scenes_evaluation_never_reports(run):
    seeds = json.loads((run / "rollout_seeds.json").read_text())
    world = get_world("reach", **WORLD)
    assert seeds and all(world.validation_seed_offset <= s < world.eval_seed_offset for s in seeds)


def test_fit_writes_checkpoints_and_the_tokenizer(run):
    checkpoints = run / "run" / "checkpoints"
    assert {p.name for p in checkpoints.iterdir()} >= {"last.ckpt", "best.ckpt"}
    saved = torch.load(checkpoints / "last.ckpt", weights_only=True)  # plain data only
    assert saved["hyper_parameters"]["policy"]["world_options"] == load_demos(run / "demos")[1]["world_options"]
    assert "tokenizer" in saved
    # rollout_episodes > 0: closed-loop success is logged each validation and picks the best checkpoint
    assert any("'monitor': 'val/success'" in key for key in saved["callbacks"])
    tokenizer = AutoTokenizer.from_pretrained(run / "run" / "tokenizer")
    assert (
        tokenizer.decode(tokenizer("go to the red circle")["input_ids"], skip_special_tokens=True)
        == "go to the red circle"
    )


def test_fit_with_action_chunks_logs_the_first_actions_error(tmp_path):
    """The data serves chunks of 3 actions; the error of the first one is measured on a view into them."""
    cli = BridgeCLI(
        args=[
            "fit", "--config", str(ROOT / "configs/vla_resnet.yaml"), *TINY_POLICY,
            "--model.init_args.policy.chunk_size", "3", "--data.init_args.action_horizon", "3",
            "--data.init_args.path", str(tmp_path / "demos"), "--data.init_args.episodes", "6",
            "--data.init_args.world_options", json.dumps(WORLD), "--data.init_args.val_fraction", "0",
            "--data.init_args.batch_size", "8", "--trainer.max_steps", "2", "--trainer.max_time", "null",
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    assert cli.model.config.chunk_size == 3
    assert 0 < cli.trainer.callback_metrics["train/action_mae"] < 2  # actions and predictions lie in [-1, 1]


def test_closed_loop_expert_ceiling_above_policy_above_random_floor(run):
    policy = load_policy(run / "run" / "checkpoints" / "last.ckpt")
    result, episodes = evaluate(
        policy.as_agent(), policy.config.make_world(), episodes=30, seeds=1, conditions=("policy", "expert", "random"),
        progress=False,
    )  # fmt: skip
    results = result.conditions
    expert, policy, random = (results[k].success_rate for k in ("expert", "policy", "random"))
    assert expert >= policy >= random, (expert, policy, random)
    assert expert >= 0.95 and policy > random
    assert [ep.seed for ep in episodes["policy"]] == [ep.seed for ep in episodes["random"]]  # the same scenes


def test_eval_command_writes_results_videos_and_an_offline_wandb_run(run, tmp_path):
    out = tmp_path / "eval"
    result = vla(
        "eval", "--ckpt", str(run / "run" / "checkpoints" / "last.ckpt"), "--episodes", "6", "--seeds", "2",
        "--num-envs", "4", "--record", "3", "--out", str(out),
    )  # fmt: skip
    assert set(result.conditions) == set(CONDITIONS)
    for r in result.conditions.values():
        assert r.episodes == 12 and len(r.per_seed) == 2 and 0 <= r.ci95[0] <= r.success_rate <= r.ci95[1]
    written = json.loads((out / "results.json").read_text())
    assert set(written) == {"version", "world", "world_options", "episode_seeds", "conditions", "checkpoint",
                            "temperature", "videos"}  # fmt: skip
    assert written["conditions"] == result.to_dict()["conditions"]
    for name, r in written["conditions"].items():
        assert r["name"] == name and len(r["episode_success"]) == len(r["episode_steps"]) == 12 and r["seeds"] == 2
        assert r["episodes"] == 12 and len(r["per_seed"]) == 2
        assert 0 <= r["ci95"][0] <= r["success_rate"] <= r["ci95"][1]
    assert EvalResult.from_json(out / "results.json") == result
    assert {p.name for p in out.glob("*.gif")} == {f"{c}.gif" for c in CONDITIONS}
    assert list(out.glob("wandb/offline-run-*/run-*.wandb"))


def test_eval_defaults_to_the_run_directory(run):
    vla("eval", "--ckpt", str(run / "run" / "checkpoints" / "best.ckpt"), "--episodes", "2", "--seeds", "1",
        "--conditions", "policy", "expert", "--video", "none", "--no-wandb")  # fmt: skip
    assert (run / "run" / "eval" / "best" / "results.json").is_file()


def test_a_checkpoint_of_another_configuration_names_the_mismatch(run, tmp_path):
    ckpt = run / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)["hyper_parameters"]["policy"]
    with pytest.raises(ValueError, match="head: 'continuous' in the checkpoint, 'bins' here"):
        VLAPolicy.load_from_checkpoint(ckpt, policy={**saved, "head": "bins"}, weights_only=True)
    classifier = ImageClassifier("resnet20", num_classes=3)
    path = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": classifier.state_dict(), "hyper_parameters": dict(classifier.hparams)}, path)
    with pytest.raises(ValueError, match="ImageClassifier checkpoint of resnet20"):
        load_policy(path)
    with pytest.raises(ValueError, match="does not exist"):
        vla("eval", "--ckpt", str(tmp_path / "missing.ckpt"))


def test_a_checkpoint_and_its_exported_folder_act_the_same(run, tmp_path):
    ckpt = run / "run" / "checkpoints" / "last.ckpt"
    vla("export", "--ckpt", str(ckpt), "--out", str(tmp_path / "policy"))
    policies = [load_policy(p) for p in (ckpt, tmp_path / "policy")]
    assert policies[1].config == policies[0].config and policies[0].config.world_options == WORLD | {
        "max_steps": 40, "step_size": 0.1, "success_radius": 0.15, "object_radius": 0.16, "agent_radius": 0.08,
        "min_separation": 0.5, "start_clearance": 0.3, "paraphrases": "train",
    }  # fmt: skip
    images, states = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8), torch.rand(4, 2) * 2 - 1
    actions = [p.predict(images, states, ["go to the red circle"] * 4) for p in policies]
    assert torch.equal(actions[0], actions[1])
    result = vla("eval", "--ckpt", str(tmp_path / "policy"), "--episodes", "2", "--seeds", "1", "--conditions",
                 "policy", "--video", "none", "--no-wandb")  # fmt: skip
    assert result.world == "reach" and result.world_options["image_size"] == 32
    assert (tmp_path / "eval" / "policy" / "results.json").is_file()
    with pytest.raises(ValueError, match="already holds a policy folder"):
        vla("export", "--ckpt", str(ckpt), "--out", str(tmp_path / "policy"))


def test_a_checkpoint_written_before_the_policy_recorded_its_world_is_refused_with_the_fix(run, tmp_path):
    """No shim reads an old checkpoint's world settings any more: loading one must say so, not act in a default
    world (a Reach of other options than it was trained in)."""
    saved = torch.load(run / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    # As written before worlds had names: the world's settings in their own hyperparameter.
    saved["hyper_parameters"]["world"] = saved["policy_config"]["world_options"]
    for key in ("world", "world_options", "action_dim", "state_dim"):
        saved["policy_config"].pop(key)
        saved["hyper_parameters"]["policy"].pop(key)
    torch.save(saved, tmp_path / "old.ckpt")
    with pytest.raises(ConfigError, match="world_options"):
        load_policy(tmp_path / "old.ckpt")


def test_collect_command_writes_a_dataset_and_will_not_overwrite(tmp_path):
    out = tmp_path / "demos"
    vla("collect", "--episodes", "3", "--out", str(out), "--world-options", "image_size=32", "num_objects=2")
    dataset, meta = load_demos(out)
    assert meta["num_episodes"] == 3 and meta["world_options"]["num_objects"] == 2
    assert len(dataset) == meta["num_frames"]
    with pytest.raises(ValueError, match="--overwrite"):
        vla("collect", "--episodes", "3", "--out", str(out))


# -- statistics and videos -------------------------------------------------------------------------------


def test_wilson_interval_matches_the_formula_and_its_edge_cases():
    low, high = wilson_interval(45, 50)
    assert low == pytest.approx(0.7864, abs=1e-4) and high == pytest.approx(0.9565, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)


def test_shuffled_instructions_are_all_someone_elses():
    tasks = [f"go to object {i}" for i in range(10)]
    mixed = shuffled(tasks)
    assert sorted(mixed) == sorted(tasks) and all(a != b for a, b in zip(tasks, mixed))


def test_one_episode_evaluates_and_zero_is_refused():
    expert = ScriptedExpert(noise=0.0)
    world = get_world("reach", **WORLD)
    result, _ = evaluate(expert, world, episodes=1, seeds=1, conditions=("policy", "blank"), progress=False)
    results = result.conditions
    assert results["policy"].episodes == results["blank"].episodes == 1  # no shuffled ablation asked, none built
    with pytest.raises(ValueError, match="at least one episode"):
        evaluate(expert, world, episodes=0, seeds=1, progress=False)


def test_language_ablations_tell_the_agent_something_else_in_the_same_scenes():
    seen = []

    def spy(obs, info):
        seen.extend(obs["task"])
        return ScriptedExpert(noise=0)(obs, info)

    eps = list(rollouts(spy, [1, 2, 3], get_world("reach"), instructions=["", "", ""], num_envs=3))
    assert set(seen) == {""} and all(ep.task for ep in eps) and all(ep.success for ep in eps)


def test_cli_lists_the_evaluation_conditions():
    assert CLI_CONDITIONS == CONDITIONS


@pytest.mark.parametrize("suffix", ["gif", "mp4"])
def test_videos_tile_episodes_of_different_lengths(tmp_path, suffix):
    import imageio.v3 as iio

    def episode(length: int, success: bool) -> Episode:
        frames = [np.full((16, 16, 3), 40 * t, np.uint8) for t in range(length)]
        return Episode(0, "go to the red circle", "go to the red circle", success, length - 1, frames)

    path = write_video(
        [episode(3, True), episode(5, False), episode(2, True)], tmp_path / f"rollouts.{suffix}", columns=2
    )
    frames = iio.imread(path)
    assert len(frames) == 5  # the longest episode; shorter ones hold their last frame
    assert frames.shape[1] >= 2 * 16 * 4 and frames.shape[2] >= 2 * 16 * 4  # 2x2 grid of 4x upscaled frames
