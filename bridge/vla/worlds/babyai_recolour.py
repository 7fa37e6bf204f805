"""BabyAI's colour symmetry: the same room with its six colours permuted, in the frames and in the mission alike.

Nothing in a BabyAI level depends on which colour is which (the bot, the rewards and the grammar treat the
six alike), so "go to the red ball" in a room swapped red for blue is "go to the blue ball" in that room, an
episode the bot would have solved with the same actions. A demo set of 20,000 episodes thus stands for up to
720 recoloured versions of each, which imitation can learn from without a single extra demo.

The recolouring is exact: a frame is a grid of tiles that minigrid draws from a finite set (an object, its
colour, its state, lit or not), so each tile is looked up in that set and replaced by minigrid's own drawing of
the same object in the new colour. Walls, floor, empty cells and the agent are not in the set and stay as they
are.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import torch
from minigrid.core.constants import COLOR_NAMES
from minigrid.core.grid import Grid
from minigrid.core.world_object import Ball, Box, Door, Key, WorldObj
from torch import Tensor

from bridge.errors import ConfigError

COLOUR_WORD = re.compile(rf"\b({'|'.join(COLOR_NAMES)})\b")


def _coloured_objects(colour: str) -> list[WorldObj]:
    """Every object a BabyAI level draws in ``colour``, in each state that changes its drawing."""
    doors = [Door(colour, is_open=True), Door(colour), Door(colour, is_locked=True)]
    return [Ball(colour), Box(colour), Key(colour), *doors]


@functools.cache
def _tiles(tile_size: int) -> Tensor:
    """(kinds, colours, lit, tile_size, tile_size, 3) uint8: minigrid's drawing of every coloured tile."""
    drawn = [
        [[Grid.render_tile(obj, highlight=lit, tile_size=tile_size) for lit in (False, True)] for obj in column]
        for column in zip(*(_coloured_objects(c) for c in COLOR_NAMES))
    ]
    return torch.from_numpy(np.array(drawn).astype(np.uint8))  # as the frames cast minigrid's float tiles


@functools.cache
def _tile_keys(tile_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """A weighting that turns a tile into one integer, the sorted keys of the drawn tiles, and their order."""
    flat = _tiles(tile_size).flatten(3).flatten(0, 2).long()  # (tiles, t * t * 3)
    weights = torch.randint(1, 2**20, (flat.shape[1],), generator=torch.Generator().manual_seed(0))
    keys, order = (flat * weights).sum(1).sort()
    if len(keys.unique()) != len(keys):  # the set is fixed, so this would fail at once in the tests
        raise RuntimeError(f"two of minigrid's tiles at tile_size {tile_size} share a key")
    return weights, keys, order


def recolour(images: Tensor, tasks: list[str], permutation: list[int], tile_size: int) -> tuple[Tensor, list[str]]:
    """Frames (..., H, W, 3) uint8 of BabyAI and their missions with colour ``i`` of ``COLOR_NAMES`` drawn and
    named as colour ``permutation[i]``."""
    if sorted(permutation) != list(range(len(COLOR_NAMES))):
        raise ConfigError(f"a permutation of the {len(COLOR_NAMES)} colours is needed, got {permutation}")
    *lead, height, width, _ = images.shape
    if height % tile_size or width % tile_size:
        raise ConfigError(f"frames of {height}x{width} pixels are no grid of {tile_size}-pixel tiles")
    rows, cols = height // tile_size, width // tile_size
    tiles = images.reshape(-1, rows, tile_size, cols, tile_size, 3).transpose(2, 3).reshape(-1, tile_size**2 * 3)

    drawn = _tiles(tile_size).to(images.device)
    colours, lit = drawn.shape[1:3]
    weights, keys, order = (t.to(images.device) for t in _tile_keys(tile_size))
    # A weighted sum, not a matmul: CUDA has no integer matmul.
    where = torch.searchsorted(keys, (tiles.long() * weights).sum(1)).clamp_max(len(keys) - 1)
    index = order[where]
    flat = drawn.flatten(3).flatten(0, 2)
    found = (flat[index] == tiles).all(dim=1)  # an exact match, not only an equal key
    # Index (kind, colour, lit) -> the same kind and light in the permuted colour.
    kind, colour, light = index // (colours * lit), index // lit % colours, index % lit
    swapped = (kind * colours + torch.as_tensor(permutation, device=images.device)[colour]) * lit + light
    tiles = torch.where(found[:, None], flat[swapped], tiles)

    frames = tiles.reshape(-1, rows, cols, tile_size, tile_size, 3).transpose(2, 3).reshape(*lead, height, width, 3)
    names = [COLOR_NAMES[i] for i in permutation]
    renamed = [COLOUR_WORD.sub(lambda m: names[COLOR_NAMES.index(m[0])], task) for task in tasks]
    return frames, renamed
