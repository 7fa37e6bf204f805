"""BabyAI's colour symmetry: recoloured frames are minigrid's own drawing of the recoloured room, and the demo
data module applies it to training batches only."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from minigrid.core.constants import COLOR_NAMES

from bridge.errors import ConfigError
from bridge.vla.demos import DemoDataModule
from bridge.vla.worlds.babyai_recolour import recolour
from bridge.vla.worlds.registry import get_world

SHIFT = [1, 2, 3, 4, 5, 0]  # blue -> green -> grey -> purple -> red -> yellow -> blue (COLOR_NAMES is sorted)


def recoloured_room(env, permutation: list[int]) -> dict:
    """The observation of the same room with every object's colour replaced, as minigrid draws it."""
    grid = env.unwrapped
    for obj in grid.grid.grid:
        if obj is not None and obj.type != "wall":
            obj.color = COLOR_NAMES[permutation[COLOR_NAMES.index(obj.color)]]
    env._view = None  # the wrapper keeps the agent's view between steps; the room changed under it
    return env._observation()


@pytest.mark.parametrize(
    "level, view, seed",
    [("GoToLocal", "partial", 0), ("GoToLocal", "full", 1), ("PutNextLocal", "partial", 3), ("Open", "full", 3)],
)
def test_a_recoloured_frame_is_minigrids_drawing_of_the_recoloured_room(level, view, seed):
    env = get_world(f"babyai:{level}", view=view).make()
    obs, _ = env.reset(seed=seed)
    frames, tasks = recolour(torch.as_tensor(obs["image"])[None], [obs["task"]], SHIFT, tile_size=8)
    expected = recoloured_room(env, SHIFT)
    assert not np.array_equal(frames[0].numpy(), obs["image"])  # objects were there to recolour
    np.testing.assert_array_equal(frames[0].numpy(), expected["image"])  # walls, floor and agent untouched
    named = [w for w in obs["task"].split() if w in COLOR_NAMES]
    assert [w for w in tasks[0].split() if w in COLOR_NAMES] == [
        COLOR_NAMES[SHIFT[COLOR_NAMES.index(w)]] for w in named
    ]


def test_frames_of_any_leading_shape_and_the_identity():
    env = get_world("babyai:GoToLocal").make()
    frames = torch.stack([torch.as_tensor(env.reset(seed=s)[0]["image"]) for s in range(6)]).view(2, 3, 56, 56, 3)
    same, tasks = recolour(frames, ["go to the red ball"], list(range(6)), tile_size=8)
    assert torch.equal(same, frames) and tasks == ["go to the red ball"]
    swapped, tasks = recolour(frames, ["go to the red ball, then pick up a grey key"], SHIFT, tile_size=8)
    assert swapped.shape == frames.shape and tasks == ["go to the yellow ball, then pick up a purple key"]


def test_bad_permutations_and_frames_are_refused():
    frames = torch.zeros(1, 56, 56, 3, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="permutation of the 6 colours"):
        recolour(frames, ["go to the red ball"], [0, 0, 1, 2, 3, 4], tile_size=8)
    with pytest.raises(ConfigError, match="no grid of 8-pixel tiles"):
        recolour(torch.zeros(1, 50, 50, 3, dtype=torch.uint8), ["go"], SHIFT, tile_size=8)


def demo_module(tmp_path, world: str, **kwargs) -> DemoDataModule:
    dm = DemoDataModule(str(tmp_path / "demos"), world, episodes=4, val_fraction=0.25, batch_size=8, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_the_data_module_recolours_training_batches_only(tmp_path):
    dm = demo_module(tmp_path, "babyai:GoToLocal", world_options={"n_obs_steps": 2}, batch_by="episode", augment=True)
    batch = next(iter(dm.train_dataloader()))
    dm.trainer = SimpleNamespace(training=False)  # validation inside fit
    assert dm.on_after_batch_transfer(batch, 0) is batch
    dm.trainer = SimpleNamespace(training=True)
    torch.manual_seed(0)
    augmented = dm.on_after_batch_transfer(batch, 0)
    torch.manual_seed(0)
    expected = recolour(batch["observation.image"], batch["task"], torch.randperm(6).tolist(), tile_size=8)
    assert torch.equal(augmented["observation.image"], expected[0]) and augmented["task"] == expected[1]
    assert torch.equal(augmented["action"], batch["action"])  # the bot's actions hold in the recoloured room


def test_a_world_without_a_symmetry_refuses_augment(tmp_path):
    with pytest.raises(ConfigError, match="world reach has no symmetry.*augment: false"):
        demo_module(tmp_path, "reach", augment=True)
    with pytest.raises(ConfigError, match="has no symmetry to augment with"):
        get_world("reach").augment(torch.zeros(1, 32, 32, 3, dtype=torch.uint8), ["reach the red cube"])
