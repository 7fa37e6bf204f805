"""The reach world (bridge/Reach-v0): determinism, the success rule, bad actions, vector envs, the expert."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from bridge.data.shapes import COLOURS
from bridge.vla import get_world
from bridge.vla.worlds.reach import (
    AGENT_COLOUR,
    HELDOUT_TEMPLATES,
    TRAIN_TEMPLATES,
    ReachEnv,
    ScriptedExpert,
    instructions,
)
from bridge.vla.worlds.rollout import rollouts


def test_registered_and_checked_by_gymnasium():
    env = gym.make("bridge/Reach-v0")
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (2,) and np.all(np.abs(obs["state"]) <= 1)
    assert obs["task"] in instructions("train")
    assert env.observation_space.contains(obs)
    frame = env.render()
    assert np.array_equal(frame, obs["image"])
    from gymnasium.utils.env_checker import check_env

    check_env(env.unwrapped, skip_render_check=True)


def test_same_seed_same_episode_other_seed_other_scene():
    a, b = ReachEnv(), ReachEnv()
    first, second = a.reset(seed=7)[0], b.reset(seed=7)[0]
    assert np.array_equal(first["image"], second["image"]) and first["task"] == second["task"]
    for _ in range(5):
        action = np.array([0.3, -0.7], dtype=np.float32)
        sa, sb = a.step(action), b.step(action)
        assert np.array_equal(sa[0]["image"], sb[0]["image"]) and sa[1:4] == sb[1:4]
    assert not np.array_equal(ReachEnv().reset(seed=8)[0]["image"], first["image"])


def test_scene_has_distinct_objects_the_target_and_the_agent():
    env = ReachEnv()
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        assert len(set(env.objects)) == 4
        colour, shape = env.objects[env.target_index]
        assert obs["task"].endswith(f"the {colour} {shape}")
        gaps = np.linalg.norm(env.positions[:, None] - env.positions[None], axis=-1)[np.triu_indices(4, 1)]
        assert gaps.min() >= env.config.min_separation
        assert (obs["image"] == AGENT_COLOUR).all(-1).any()  # the agent marker is visible
        assert (obs["image"] == COLOURS[colour]).all(-1).any()
        assert not info["success"]


def test_success_within_the_radius_ends_the_episode_with_reward_one():
    env = ReachEnv()
    env.reset(seed=1)
    env.agent = (env.target + np.array([env.config.success_radius * 0.9, 0])).astype(np.float32)
    _, reward, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    env.reset(seed=1)
    env.agent = (env.target + np.array([env.config.success_radius * 1.2, 0])).astype(np.float32)
    _, reward, terminated, _, info = env.step(np.zeros(2, dtype=np.float32))
    assert (reward, terminated, info["success"]) == (0.0, False, False)


def test_truncated_after_max_steps():
    env = ReachEnv(max_steps=40)
    env.reset(seed=2)
    results = [env.step(np.zeros(2, dtype=np.float32)) for _ in range(40)]
    assert [r[3] for r in results] == [False] * 39 + [True]
    assert not any(r[2] for r in results)


def test_actions_move_the_agent_by_step_size_and_stop_at_the_walls():
    env = ReachEnv()
    obs, _ = env.reset(seed=3)
    moved, *_ = env.step(np.array([1.0, -0.5], dtype=np.float32))
    np.testing.assert_allclose(moved["state"] - obs["state"], [0.1, -0.05], atol=1e-6)
    for _ in range(30):
        moved, *_ = env.step(np.array([1.0, 1.0], dtype=np.float32))
    assert np.all(moved["state"] <= 1.0)


@pytest.mark.parametrize(
    "action, message",
    [([1.5, 0.0], "outside the action space"), ([np.nan, 0.0], "non-finite"), ([0.1, 0.2, 0.3], "shape")],
)
def test_bad_actions_are_refused_with_the_reason(action, message):
    env = ReachEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(np.asarray(action, dtype=np.float32))


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="num_objects"):
        ReachEnv(num_objects=13)
    with pytest.raises(ValueError, match="paraphrases"):
        ReachEnv(paraphrases="unseen")


def test_heldout_paraphrases_describe_the_same_scenes():
    train, heldout = ReachEnv(paraphrases="train"), ReachEnv(paraphrases="heldout")
    for seed in range(10):
        a, b = train.reset(seed=seed)[0], heldout.reset(seed=seed)[0]
        assert np.array_equal(a["image"], b["image"])
        assert a["task"].split(" the ")[-1] == b["task"].split(" the ")[-1]  # same object named
        assert any(b["task"] == t.format(b["task"].split(" the ")[-1]) for t in HELDOUT_TEMPLATES)
    assert not set(instructions("train")) & set(instructions("heldout"))
    assert len(instructions("train")) == 12 * len(TRAIN_TEMPLATES)


def test_vector_env_matches_single_envs():
    envs = get_world("reach", image_size=32).make_vec(3)
    obs, info = envs.reset(seed=[10, 11, 12])
    for i, seed in enumerate((10, 11, 12)):
        single, single_info = ReachEnv(image_size=32).reset(seed=seed)
        assert np.array_equal(obs["image"][i], single["image"]) and obs["task"][i] == single["task"]
        np.testing.assert_array_equal(info["target"][i], single_info["target"])
    envs.close()


def test_expert_succeeds_nearly_always_and_quickly():
    expert = ScriptedExpert(noise=0.1)
    episodes = list(rollouts(expert, range(200), get_world("reach"), num_envs=50))
    success = np.mean([ep.success for ep in episodes])
    assert success >= 0.99, f"expert success {success:.1%}"
    assert np.mean([ep.steps for ep in episodes]) < 20


def test_rollouts_record_frames_and_the_final_frame():
    episodes = list(rollouts(ScriptedExpert(), [5, 6, 7], get_world("reach"), num_envs=2, record=2))
    assert [ep.seed for ep in episodes] == [5, 6, 7]
    for ep in episodes[:2]:
        assert len(ep.frames) == ep.steps + 1 and len(ep.actions) == ep.steps
    assert episodes[2].frames == []
