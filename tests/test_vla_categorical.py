"""Discrete actions and frame history: the categorical head, and a task only a policy with memory can solve."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

from bridge.errors import ConfigError
from bridge.vla.demos import DemoFrames, EpisodeOrder, collect_demos
from bridge.vla.evaluation.closed_loop import evaluate
from bridge.vla.policy.configuration import PolicyConfig, config_mismatch
from bridge.vla.policy.modeling import Policy
from bridge.vla.worlds.base import World
from bridge.vla.worlds.registry import get_world, register_world
from bridge.vla.worlds.spaces import ActionSpace, ObservationSpec

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)


class RecallEnv(gym.Env):
    """Each step shows one of three colours; the right action is the colour shown one step *before*.

    A policy that sees only the current frame is right by chance (1/3 per step); one that sees the last
    two frames can be right every time. Success: every action of the episode right.
    """

    def __init__(self, size: int, length: int) -> None:
        self.size, self.length = size, length
        self.action_space = gym.spaces.Discrete(3)
        self.observation_space = gym.spaces.Dict(
            {"image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8), "task": gym.spaces.Text(32)}
        )

    def _obs(self) -> dict:
        return {"image": np.broadcast_to(COLOURS[self.shown[-1]], (self.size, self.size, 3)).copy(), "task": "recall"}

    def _info(self) -> dict:
        return {"answer": self.shown[-2] if len(self.shown) > 1 else self.shown[-1]}

    def reset(self, seed: int | None = None, options=None):
        super().reset(seed=seed)
        self.shown, self.right = [int(self.np_random.integers(3))], True
        return self._obs(), self._info()

    def step(self, action):
        self.right &= int(action) == self._info()["answer"]
        self.shown.append(int(self.np_random.integers(3)))
        done = len(self.shown) > self.length
        return self._obs(), float(done and self.right), done and self.right, done and not self.right, self._info()


class RecallExpert:
    def __call__(self, obs: dict, info: dict) -> np.ndarray:
        return np.asarray(info["answer"], dtype=np.int64)

    label = __call__

    def describe(self) -> dict:
        return {"name": "recall"}


@register_world("recall")
@dataclass(frozen=True)
class Recall(World):
    image_size: int = 8
    n_obs_steps: int = 1
    length: int = 4

    @property
    def observation(self) -> ObservationSpec:
        return ObservationSpec(self.image_size, 0, self.n_obs_steps)

    @property
    def action_space(self) -> ActionSpace:
        return ActionSpace.discrete(3)

    @property
    def max_steps(self) -> int:
        return self.length

    def make(self, render_mode: str | None = "rgb_array") -> gym.Env:
        return RecallEnv(self.image_size, self.length)

    def expert(self, seed: int = 0, noise: float | None = None) -> RecallExpert:
        return RecallExpert()

    def instructions(self, split="all") -> list[str]:
        return ["recall"]


TINY = dict(
    encoder="resnet20", encoder_kwargs={"stem": "cifar", "layers": [1], "widths": [8]}, image_size=8,
    text_dim=16, text_layers=1, dim=32, depth=1, num_heads=2, conditioning="prefix",
)  # fmt: skip


def policy_for(k: int, **overrides) -> Policy:
    torch.manual_seed(0)
    return Policy(PolicyConfig(world="recall", world_options={"n_obs_steps": k}, **{**TINY, **overrides}))


def test_a_discrete_world_gets_the_categorical_head_and_refuses_the_others():
    c = PolicyConfig(world="recall", **TINY).with_world_sizes()
    assert (c.head, c.action_dim, c.n_obs_steps) == ("categorical", 3, 1)
    assert PolicyConfig(**TINY).with_world_sizes().head == "bins"  # reach: continuous actions
    with pytest.raises(ConfigError, match="set head: categorical"):
        PolicyConfig(world="recall", head="bins", **TINY).with_world_sizes()
    with pytest.raises(ConfigError, match="set head: bins or continuous"):
        PolicyConfig(head="categorical", **TINY).with_world_sizes()
    # A checkpoint whose head was left to the world matches the same head named explicitly, not another one.
    assert config_mismatch(vars(PolicyConfig(**TINY)), vars(PolicyConfig(head="bins", **TINY))) == []
    assert config_mismatch(vars(PolicyConfig(**TINY)), vars(PolicyConfig(head="continuous", **TINY)))


@pytest.mark.parametrize("image_tokens", ["grid", "pooled", "keypoints"])
def test_history_shapes_and_the_error_for_a_missing_history(image_tokens):
    policy = policy_for(3, chunk_size=2, image_tokens=image_tokens).eval()
    images = torch.zeros(5, 3, 8, 8, 3, dtype=torch.uint8)
    assert policy(images, torch.zeros(5, 0), ["recall"] * 5).shape == (5, 2, 3)  # logits over 3 actions
    actions = policy.predict(images, torch.zeros(5, 0), ["recall"] * 5)
    assert actions.shape == (5, 2) and actions.dtype == torch.int64
    with pytest.raises(ConfigError, match=r"the last 3 frames, frames \(B, 3, 8, 8, 3\)"):
        policy(images[:, 0], torch.zeros(5, 0), ["recall"] * 5)
    # Each frame of the history changes the output: none is dropped on the way to the trunk.
    base = policy(images, torch.zeros(5, 0), ["recall"] * 5)
    for t in range(3):
        changed = images.clone()
        changed[:, t] = 255
        assert not torch.allclose(policy(changed, torch.zeros(5, 0), ["recall"] * 5), base)
    # The trunk's tokens: the 3 words of "[CLS] recall [SEP]", each frame's pooled vector (and its 8x8 grid, or its
    # keypoints' token), 2 queries.
    seen = []
    policy.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
    policy(images, torch.zeros(5, 0), ["recall"] * 5)
    per_frame = {"grid": 1 + 64, "pooled": 1, "keypoints": 2}[image_tokens]
    assert seen == [3 + 3 * per_frame + 2]
    assert (policy.image_proj is None) == (image_tokens != "grid")
    assert (policy.keypoints is None) == (image_tokens != "keypoints")


def train(policy: Policy, data: DemoFrames, steps: int = 120) -> Policy:
    batch = torch.utils.data.default_collate([data[i] for i in range(len(data))])  # all of it, as one batch
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = policy.compute_loss(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy.eval()


@pytest.mark.parametrize("image_tokens", ["grid", "pooled", "keypoints"])
def test_a_batch_by_episode_serves_each_frame_once_and_the_policy_reads_it_alike(image_tokens):
    dataset, _ = collect_demos(get_world("recall", n_obs_steps=3), 5, progress=False)
    data = DemoFrames(dataset, 1, ActionSpace.discrete(3), n_obs_steps=3)
    items = list(range(len(data)))
    apart = torch.utils.data.default_collate([data[i] for i in items])  # (N, 3, H, W, 3): each frame up to 3 times
    shared = data[items]  # every frame of the set once, and where each item's three are
    assert shared["observation.image"].shape == (len(data), 8, 8, 3)
    assert torch.equal(shared["observation.image"][shared["observation.image_index"]], apart["observation.image"])
    # One instruction per episode, several in the batch: each shared frame must be read under its own.
    episodes = dataset["episode_index"]
    apart["task"] = shared["task"] = [" ".join(["recall"] * (1 + e % 3)) for e in episodes]
    policy = policy_for(3, conditioning="film", image_tokens=image_tokens).eval()
    with torch.no_grad():
        for film in policy.encoder_films.values():  # FiLM starts as the identity: give it something to do
            torch.nn.init.normal_(film.proj.weight)
    assert len(policy.encoder_films) > 0
    states = torch.zeros(len(data), 0)
    with torch.no_grad():  # each item alone, its three frames apart: the reference
        alone = torch.cat(
            [policy(apart["observation.image"][i : i + 1], states[:1], apart["task"][i : i + 1]) for i in items]
        )
        got = policy(shared["observation.image"], states, shared["task"], shared["observation.image_index"])
        assert torch.allclose(got, alone, atol=1e-5)
        assert torch.allclose(policy.compute_loss(shared).loss, policy.compute_loss(apart).loss)
        one_instruction = policy(
            shared["observation.image"], states, ["recall"] * len(data), shared["observation.image_index"]
        )
        assert not torch.allclose(one_instruction, alone, atol=1e-3)
    with pytest.raises(ConfigError, match=r"image_index must be \(B, n_obs_steps=3\)"):
        policy(
            shared["observation.image"],
            torch.zeros(len(data), 0),
            shared["task"],
            shared["observation.image_index"][:, :2],
        )


def test_episode_order_keeps_episodes_whole_and_serves_every_frame_once_per_epoch():
    episode_index = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    torch.manual_seed(0)
    order = EpisodeOrder(episode_index)
    epochs = [list(order) for _ in range(4)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(10)) and len(order) == 10
        runs = torch.unique_consecutive(episode_index[epoch])
        assert len(runs) == 4  # each episode's frames together, in order
        assert all(b == a + 1 for a, b in zip(epoch, epoch[1:]) if episode_index[a] == episode_index[b])
    assert len({tuple(epoch) for epoch in epochs}) > 1  # a fresh order of episodes each epoch
    torch.manual_seed(0)  # what DDP ranks seeded alike do: the same orders, epoch by epoch
    again = EpisodeOrder(episode_index)
    assert [list(again) for _ in range(4)] == epochs


def test_only_a_policy_with_memory_solves_recall():
    """Trained on the same expert demos, the k=2 policy succeeds in closed loop and the k=1 one cannot."""
    rates = {}
    for k in (1, 2):
        dataset, meta = collect_demos(get_world("recall", n_obs_steps=k), 24, progress=False)
        assert dataset.features["action"].dtype == "int64" and meta["observation"]["n_obs_steps"] == k
        data = DemoFrames(dataset, 1, ActionSpace.discrete(3), n_obs_steps=k)
        policy = train(policy_for(k), data)
        result, _ = evaluate(
            policy.as_agent(), get_world("recall", n_obs_steps=k), episodes=40, seeds=1,
            conditions=("policy", "expert", "random"), progress=False,
        )  # fmt: skip
        results = result.conditions
        rates[k] = results["policy"].success_rate
        assert results["expert"].success_rate == 1.0
    assert rates[2] >= 0.9, rates
    assert rates[1] <= 0.3, rates  # 4 steps right by chance: (1/3)^3 once the first frame is guessed


def test_temperature_draws_the_action_from_the_heads_softmax_and_zero_takes_the_most_likely():
    policy = policy_for(1).eval()
    with torch.no_grad():  # a peaked head, so that argmax, T=1 and T=3 tell apart
        policy.action_head.bias.copy_(torch.tensor([2.0, 0.5, -1.0]))
    n = 6000
    images = torch.randint(0, 256, (1, 8, 8, 3), dtype=torch.uint8).expand(n, -1, -1, -1)
    states, tasks = torch.zeros(n, 0), ["recall"] * n
    logits = policy(images[:1], states[:1], tasks[:1])[0, 0]
    assert torch.equal(policy.predict(images, states, tasks)[:, 0], logits.argmax().expand(n))
    assert torch.equal(policy.predict(images, states, tasks, temperature=1e-3)[:, 0], logits.argmax().expand(n))
    for temperature in (1.0, 3.0):
        drawn = policy.predict(images, states, tasks, temperature, torch.Generator().manual_seed(0))[:, 0]
        frequencies = torch.bincount(drawn, minlength=3) / n
        assert torch.allclose(frequencies, (logits / temperature).softmax(-1), atol=0.02), (temperature, frequencies)
        again = policy.predict(images, states, tasks, temperature, torch.Generator().manual_seed(0))[:, 0]
        assert torch.equal(drawn, again)  # seeded: an evaluation repeats
    with pytest.raises(ConfigError, match=r"temperature must be >= 0 \(0: the most likely action\), got -1.0"):
        policy.predict(images[:2], states[:2], tasks[:2], temperature=-1.0)


def test_a_continuous_head_has_nothing_to_draw_and_a_bins_head_draws_bins():
    torch.manual_seed(0)
    continuous = Policy(PolicyConfig(head="continuous", **TINY)).eval()  # reach: continuous actions
    images, states = torch.zeros(2, 8, 8, 3, dtype=torch.uint8), torch.zeros(2, continuous.config.state_dim)
    obs = {"image": images.numpy(), "state": states.numpy(), "task": ["a", "b"]}
    with pytest.raises(ConfigError, match="a continuous head predicts one action.*use temperature 0"):
        continuous.as_agent(temperature=1.0)(obs, {})
    bins = Policy(PolicyConfig(**TINY)).eval()
    drawn = bins.predict(images, states, ["a", "b"], temperature=50.0)  # nearly uniform over 256 bins
    assert drawn.shape == (2, 1, bins.config.action_dim) and drawn.abs().max() <= 1
    assert not torch.equal(drawn, bins.predict(images, states, ["a", "b"]))
