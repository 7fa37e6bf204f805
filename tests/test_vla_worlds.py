"""Worlds: a world written outside the package (one file, found through BRIDGE_PLUGINS) is collected, served,
evaluated and acted in by the same code as reach; discrete actions, no state vector and frame history included."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from bridge.errors import UnknownNameError
from bridge.vla import get_world, list_worlds
from bridge.vla.demos import DemoDataModule, collect_demos, load_demos, save_demos
from bridge.vla.demos.format import FORMAT_VERSION
from bridge.vla.evaluation.closed_loop import evaluate
from bridge.vla.policy.configuration import PolicyConfig
from bridge.vla.policy.modeling import Policy
from bridge.vla.worlds.rollout import rollouts

# The whole world: walk left or right to the end the instruction names. Actions are two discrete moves or a
# 1-D box; there is no state vector, only the frame (a bright column where the agent stands).
LINE_WORLD = """
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from bridge.vla import ActionSpace, ObservationSpec, World, register_world


@register_world("line")
@dataclass(frozen=True)
class Line(World):
    discrete: bool = True
    image_size: int = 16
    n_obs_steps: int = 1
    max_steps: int = 12

    @property
    def observation(self):
        return ObservationSpec(self.image_size, state_dim=0, n_obs_steps=self.n_obs_steps)

    @property
    def action_space(self):
        return ActionSpace.discrete(2) if self.discrete else ActionSpace.box(1)

    def make(self, render_mode="rgb_array"):
        return LineEnv(self)

    def expert(self, seed=0, noise=None):
        return LineExpert(self.discrete)

    def instructions(self, split="all"):
        return ["go left", "go right"]


class LineExpert:
    def __init__(self, discrete):
        self.discrete = discrete

    def __call__(self, obs, info):
        right = info["goal"] > 0
        return right.astype(np.int64) if self.discrete else np.where(right, 1.0, -1.0)[:, None].astype(np.float32)

    label = __call__

    def describe(self):
        return {"kind": "walks to the goal"}


class LineEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, world):
        self.world = world
        size = world.image_size
        self.observation_space = spaces.Dict(
            {"image": spaces.Box(0, 255, (size, size, 3), np.uint8), "task": spaces.Text(16, charset="adeghilnort ")}
        )
        self.action_space = spaces.Discrete(2) if world.discrete else spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.goal = 1.0 if self.np_random.random() < 0.5 else -1.0
        self.pos, self.steps = float(self.np_random.uniform(-0.5, 0.5)), 0
        self.task = "go right" if self.goal > 0 else "go left"
        return self._obs(), {"goal": self.goal}

    def step(self, action):
        move = (1.0 if int(action) == 1 else -1.0) if self.world.discrete else float(np.asarray(action)[0])
        self.pos = float(np.clip(self.pos + 0.25 * move, -1, 1))
        self.steps += 1
        terminated = self.pos * self.goal >= 1
        truncated = not terminated and self.steps >= self.world.max_steps
        return self._obs(), float(terminated), terminated, truncated, {"goal": self.goal}

    def _obs(self):
        size = self.world.image_size
        frame = np.zeros((size, size, 3), np.uint8)
        frame[:, min(size - 1, int((self.pos + 1) / 2 * size))] = 255
        return {"image": frame, "task": self.task}
"""


@pytest.fixture
def line(tmp_path, monkeypatch):
    """The world above as a module outside the package, named in BRIDGE_PLUGINS."""
    (tmp_path / "line_world.py").write_text(textwrap.dedent(LINE_WORLD))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BRIDGE_PLUGINS", "line_world")
    return "line"


def says_the_instruction(obs, info):
    """An agent that reads the instruction: the policy condition, without training one."""
    return np.array([1 if "right" in task else 0 for task in obs["task"]], dtype=np.int64)


def test_a_plugin_world_is_found_by_name_and_a_typo_gets_close_names(line):
    world = get_world(line, image_size=8)
    assert world.name == "line" and world.options["image_size"] == 8 and "line" in list_worlds()
    assert world.action_space.kind == "discrete" and world.observation.state_dim == 0
    with pytest.raises(UnknownNameError, match="did you mean line"):
        get_world("lien")


def test_a_plugin_world_collects_demos_the_data_module_serves(line, tmp_path):
    dataset, meta = collect_demos(get_world(line), 6, seed=1, progress=False)
    assert meta["world"] == "line" and meta["action_space"]["kind"] == "discrete"
    assert "observation.state" not in dataset.column_names
    path = save_demos(dataset, meta, tmp_path / "line")
    loaded = load_demos(path)[1]
    assert loaded["format_version"] == FORMAT_VERSION and loaded["world"] == "line"
    assert loaded["features"]["action"] == {"dtype": "int64", "shape": [1], "names": None}  # LeRobot's scalar
    dm = DemoDataModule(path=str(path), world=line, episodes=None, val_fraction=0, action_horizon=2, batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["action"].dtype == torch.long and batch["action"].shape == (4, 2)
    assert batch["observation.state"].shape == (4, 0)
    with pytest.raises(ValueError, match="world='line' .asked for 'reach'."):
        DemoDataModule(path=str(path), episodes=None).setup("fit")
    with pytest.raises(ValueError, match="would reach 500,000, where line's validation seeds start"):
        collect_demos(get_world(line), 2, seed=499_999, progress=False)


def test_a_plugin_world_is_evaluated_with_its_expert_random_floor_and_ablations(line):
    result, episodes = evaluate(says_the_instruction, get_world(line), episodes=8, seeds=2, progress=False)
    results = result.conditions
    assert results["expert"].success_rate == results["policy"].success_rate == 1.0
    assert results["blank"].success_rate < 1.0  # told nothing, it always walks left
    assert [ep.seed for ep in episodes["policy"]] == [ep.seed for ep in episodes["random"]]


def test_frame_history_hands_the_agent_the_last_frames(line):
    seen = []

    def spy(obs, info):
        seen.append(obs["image"])
        return says_the_instruction(obs, info)

    episodes = list(rollouts(spy, [0, 1, 2], get_world(line, n_obs_steps=3), num_envs=2))
    assert all(ep.success for ep in episodes)
    assert seen[0].shape == (2, 3, 16, 16, 3)
    assert (seen[0][:, 0] == seen[0][:, 2]).all()  # at the start, the first frame stands in for the past
    assert (seen[1][:, 1] == seen[0][:, 2]).all() and not (seen[1][:, 2] == seen[0][:, 2]).all()


def test_demos_of_a_world_with_frame_history_serve_the_last_frames(line, tmp_path):
    dataset, meta = collect_demos(get_world(line, n_obs_steps=3), 3, progress=False)
    dm = DemoDataModule(path=str(save_demos(dataset, meta, tmp_path / "d")), world=line, episodes=None, val_fraction=0)
    dm.setup("fit")
    frames = dm.train_set.images
    first, third = dm.train_set[0]["observation.image"], dm.train_set[2]["observation.image"]
    assert first.shape == (3, 16, 16, 3) and (first == frames[0]).all()  # the episode's first frame stands in
    assert torch.equal(third, frames[:3])


def test_the_policy_reads_its_sizes_and_vocabulary_from_the_world(line):
    config = PolicyConfig(
        world=line, world_options={"discrete": False}, encoder="resnet20",
        encoder_kwargs={"stem": "imagenet", "layers": [1], "widths": [8]}, image_size=16, text_dim=16,
        text_layers=1, dim=32, depth=1, num_heads=2, num_bins=8,
    )  # fmt: skip
    policy = Policy(config)
    assert (policy.config.action_dim, policy.config.state_dim) == (1, 0) and policy.state_proj is None
    assert policy.action_head.out_features == 8
    assert len(policy.text.tokenizer.get_vocab()) == 5 + 3  # special tokens + go, left, right
    result, _ = evaluate(policy.as_agent(), get_world(line, discrete=False), episodes=2, seeds=1,
                         conditions=("policy",), progress=False)  # fmt: skip
    assert result.conditions["policy"].episodes == 2
    with pytest.raises(ValueError, match="discrete actions.*set head: categorical"):
        Policy(PolicyConfig(world=line, head="bins"))


def test_the_policy_config_imports_without_torch():
    code = "import sys, bridge.vla.policy.configuration; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
