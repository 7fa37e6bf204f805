"""A built-in world is one file of bridge/vla/worlds/ named after its family: the registry finds it by that name."""

from __future__ import annotations

import importlib

from bridge.vla.worlds import registry


def test_each_world_file_registers_the_family_it_is_named_after():
    families = registry.builtin_families()
    assert {"reach", "babyai"} <= set(families)
    for family in families:
        module = importlib.import_module(f"{registry.PACKAGE}.{family}")
        cls = registry._WORLDS.get(family)
        assert cls is not None and cls.__module__ == module.__name__, family


def test_the_framework_files_hold_no_world():
    for name in registry.NOT_WORLDS:
        module = importlib.import_module(f"{registry.PACKAGE}.{name}")
        assert not [cls for cls in registry._WORLDS.values() if cls.__module__ == module.__name__], name
