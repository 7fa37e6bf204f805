"""BabyAI worlds (``babyai:<Level>``): minigrid's levels in the World dialect, the bot as expert, BabyAI's seeds."""

from __future__ import annotations

import contextlib
import io

import gymnasium as gym
import numpy as np
import pytest
from minigrid.utils.baby_ai_bot import BabyAIBot
from minigrid.wrappers import RGBImgPartialObsWrapper

import bridge.vla.worlds.babyai as babyai
from bridge.cli import main
from bridge.errors import ConfigError, UnknownNameError
from bridge.vla.demos import collect_demos, load_demos
from bridge.vla.evaluation.closed_loop import eval_seeds, evaluate
from bridge.vla.policy.language import train_tokenizer, unknown_words
from bridge.vla.worlds.registry import get_world, list_worlds
from bridge.vla.worlds.rollout import rollouts

LEVELS = ("GoToRedBallGrey", "GoToRedBall", "GoToLocal", "PickupLoc", "PutNextLocal")


def minigrid_env(level: str) -> gym.Env:
    return gym.make(f"BabyAI-{level}-v0")


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(get_world("babyai:GoToLocal").instructions("train"))


@pytest.mark.parametrize("level", LEVELS)
def test_a_level_speaks_the_world_dialect_and_its_bot_demos_succeed(level, tokenizer):
    world = get_world(f"babyai:{level}")
    raw = minigrid_env(level)
    with contextlib.redirect_stdout(io.StringIO()):
        raw.reset(seed=0)
    assert world.name == f"babyai:{level}" and world.max_steps == raw.unwrapped.max_steps
    assert world.action_space.kind == "discrete" and world.action_space.size == 7
    assert world.observation.image_size == 56 and world.observation.n_obs_steps == 1

    obs, info = world.make().reset(seed=7)
    raw.reset(seed=7)
    assert obs["image"].shape == (56, 56, 3) and obs["image"].dtype == np.uint8
    assert obs["task"] == raw.unwrapped.mission and set(obs) == {"image", "task"}
    tasks = world.tasks(range(20))
    assert not [w for task in tasks for w in unknown_words(tokenizer, task)]  # the grammar covers every mission

    dataset, meta = collect_demos(world, 3, num_envs=3, progress=False)
    assert meta["failed_episodes"] == 0 and meta["world"] == f"babyai:{level}"
    assert meta["world_options"]["view"] == "partial"
    actions = dataset.with_format("numpy")[:]["action"]
    assert actions.dtype == np.int64 and 0 <= actions.min() and actions.max() < 7
    assert sorted(set(dataset["episode_index"])) == [0, 1, 2]


def test_frames_and_bot_actions_are_minigrids_own():
    # The partial view is drawn by bridge (faster) and minigrid's view is computed once per step: both must
    # give exactly what minigrid's RGBImgPartialObsWrapper and a bot driving it give.
    world = get_world("babyai:PutNextLocal")
    for ep in rollouts(world.expert(), range(4), world, num_envs=2, record=4):
        env = RGBImgPartialObsWrapper(minigrid_env("PutNextLocal"))
        with contextlib.redirect_stdout(io.StringIO()):
            obs, _ = env.reset(seed=ep.seed)
        bot, frames, actions = BabyAIBot(env), [obs["image"]], []
        action = bot.replan()
        while True:
            obs, reward, terminated, truncated, _ = env.step(action)
            frames.append(obs["image"])
            actions.append(action)
            if terminated or truncated:
                break
            action = bot.replan(action)
        assert ep.success and reward > 0 and [int(a) for a in ep.actions] == actions
        assert len(ep.frames) == len(frames) and all(np.array_equal(a, b) for a, b in zip(ep.frames, frames))


def test_options_full_view_and_frame_history():
    world = get_world("babyai:GoToLocal", view="full", n_obs_steps=3)
    assert get_world(world.name, **world.options) == world  # the name carries the level, the options the rest
    assert world.replace(view="partial").level == "GoToLocal"
    assert world.observation.image_size == 64  # the 8x8 room at tile size 8
    assert world.make().reset(seed=0)[0]["image"].shape == (64, 64, 3)

    seen = []

    def agent(obs, info):
        seen.append(obs["image"])
        return np.full(len(obs["task"]), 2)  # forward

    list(rollouts(agent, range(2), get_world("babyai:GoToLocal", n_obs_steps=3), num_envs=2))
    assert seen[0].shape == (2, 3, 56, 56, 3) and seen[0].dtype == np.uint8
    assert all(np.array_equal(f, seen[0][:, 0]) for f in np.moveaxis(seen[0], 1, 0))  # history starts repeated
    assert not np.array_equal(seen[3][:, 0], seen[3][:, 2])  # then it moves


def test_unknown_levels_and_options_are_refused_with_the_fix():
    with pytest.raises(UnknownNameError, match="babyai:GoToLocal"):
        get_world("babyai:GoToLocl")
    with pytest.raises(UnknownNameError, match=r"babyai:<Level>"):
        get_world("babyai")
    with pytest.raises(ConfigError, match="view"):
        get_world("babyai:GoToLocal", view="top")
    with pytest.raises(ConfigError, match=r"chance of a random move per step, in \[0, 1\); got 1.5"):
        get_world("babyai:GoToLocal").expert(noise=1.5)
    assert "babyai" in list_worlds()


def test_sampling_rejected_never_reaches_stdout(capsys):
    world = get_world("babyai:PutNextLocal")
    seeds = [4, 8, 13]
    raw = minigrid_env("PutNextLocal")
    for seed in seeds:
        raw.reset(seed=seed)
    assert "Sampling rejected" in capsys.readouterr().out  # these seeds do reject layouts
    env = world.make()
    for seed in seeds:
        env.reset(seed=seed)
    world.tasks(seeds)
    assert capsys.readouterr().out == ""


def test_seeds_are_deterministic_and_demos_never_reach_evaluation_seeds():
    world = get_world("babyai:GoToLocal")
    assert world.eval_seed_offset == 10**9 and min(eval_seeds(5, 3, world.eval_seed_offset)) == 10**9
    a, b = world.make().reset(seed=11)[0], world.make().reset(seed=11)[0]
    assert np.array_equal(a["image"], b["image"]) and a["task"] == b["task"]
    c = world.make().reset(seed=12)[0]
    assert not np.array_equal(a["image"], c["image"]) or a["task"] != c["task"]
    with pytest.raises(ConfigError, match="validation seeds"):
        collect_demos(world, 5, seed=world.validation_seed_offset - 3, progress=False)


def test_a_bot_failure_drops_its_episode_and_counts_it(monkeypatch):
    class GivesUpOnce(BabyAIBot):
        failures = 1

        def replan(self, action_taken=None):
            if action_taken is not None and GivesUpOnce.failures:
                GivesUpOnce.failures -= 1
                raise AssertionError("the bot is lost")
            return super().replan(action_taken)

    monkeypatch.setattr(babyai, "BabyAIBot", GivesUpOnce)
    dataset, meta = collect_demos(get_world("babyai:GoToRedBall"), 3, num_envs=3, progress=False)
    assert meta["failed_episodes"] == 1 and meta["num_episodes"] == 3 and GivesUpOnce.failures == 0
    assert sorted(set(dataset["episode_index"])) == [0, 1, 2]


def test_a_noisy_bot_executes_random_moves_and_records_its_own_actions():
    world = get_world("babyai:GoToLocal")
    for noise in (0.0, 0.3):
        expert = world.expert(seed=1, noise=noise)
        episodes = list(rollouts(expert, range(12), world, num_envs=4, record=12, label=expert.label))
        assert all(ep.success for ep in episodes)  # the bot plans again from where each move left it
        executed = np.concatenate([np.ravel(ep.actions) for ep in episodes])
        recorded = np.concatenate([np.ravel(ep.labels) for ep in episodes])
        swapped = executed != recorded
        if noise == 0:
            assert not swapped.any()
        else:  # about a third of the steps drew a move, two thirds of those a move other than the bot's
            assert 0.05 < swapped.mean() < 0.4 and set(executed[swapped]) <= {0, 1, 2}
    dataset, meta = collect_demos(world, 2, noise=0.3, num_envs=2, progress=False)
    assert meta["expert"]["noise"] == 0.3


def test_collection_in_two_processes_records_the_same_episodes_as_in_one():
    # One environment per process and 40 episodes: three blocks of 16 seeds, so both processes take blocks. A
    # noisy bot draws its moves from the block's own seed: the episodes cannot depend on who ran the block.
    world = get_world("babyai:GoToRedBallGrey")
    runs = [collect_demos(world, 40, noise=0.3, num_envs=1, workers=w, progress=False) for w in (1, 2)]
    (one, meta_one), (two, meta_two) = runs
    assert meta_one == meta_two and meta_one["num_episodes"] == 40
    for column in ("action", "task", "episode_index", "frame_index"):
        assert one[column] == two[column]
    frames = [np.stack(dataset.with_format("numpy")["observation.image"]) for dataset in (one, two)]
    assert np.array_equal(*frames)
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        collect_demos(world, 1, workers=0)


def test_the_bot_runs_only_for_the_expert():
    envs = []

    def policy(obs, info):
        envs.extend(info["bot"])
        return np.zeros(len(obs["task"]), dtype=np.int64)

    list(rollouts(policy, range(2), get_world("babyai:GoToRedBallGrey"), num_envs=2))
    assert envs and all(env._bot is None for env in envs)  # a policy's evaluation never pays for the bot


def test_evaluation_has_the_bot_as_ceiling_random_as_floor_and_episode_lengths():
    world = get_world("babyai:GoToRedBallGrey")
    result, _ = evaluate(None, world, episodes=12, seeds=1, num_envs=12, conditions=("expert", "random"),
                         progress=False)  # fmt: skip
    expert, random = result.conditions["expert"], result.conditions["random"]
    assert expert.success_rate == 1.0 and random.success_rate < 0.5
    assert 1 <= expert.mean_steps == expert.mean_steps_to_success < random.mean_steps <= world.max_steps


def test_the_cli_collects_with_world_options(tmp_path, capsys):
    out = tmp_path / "demos"
    main(["vla", "collect", "--world", "babyai:GoToRedBallGrey", "--world-options", "view=full", "n_obs_steps=2",
          "--episodes", "2", "--num-envs", "2", "--out", str(out)])  # fmt: skip
    dataset, meta = load_demos(out)
    assert meta["world_options"] == {"view": "full", "tile_size": 8, "n_obs_steps": 2}
    assert meta["observation"]["n_obs_steps"] == 2 and np.asarray(dataset[0]["observation.image"]).shape == (64, 64, 3)
    main(["vla", "worlds"])
    assert "babyai" in capsys.readouterr().out.split()
