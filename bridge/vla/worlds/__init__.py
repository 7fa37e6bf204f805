"""Worlds: the World type, its specs and registry, the agents that act in a world and the rollout loop, and one
file per world (``reach.py``, ``babyai.py``). A new world is one more file here (see docs/extending.md)."""

from bridge.vla.worlds.base import World
from bridge.vla.worlds.registry import get_world, list_worlds, register_world
from bridge.vla.worlds.spaces import ActionSpace, ObservationSpec

__all__ = ["ActionSpace", "ObservationSpec", "World", "get_world", "list_worlds", "register_world"]
