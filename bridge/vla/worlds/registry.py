"""The world registry: a world is found by name (``reach``, ``babyai:GoToLocal``), the way LeRobot finds env configs.

A built-in world is one file of this package named after its family (``reach.py``, ``babyai.py``), imported on
first use (a world's module pulls in its simulator). A world outside the package registers itself when its module
is imported, which ``BRIDGE_PLUGINS`` arranges (see bridge.plugins).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

from bridge.errors import ConfigError, UnknownNameError
from bridge.plugins import load_plugins
from bridge.vla.worlds.base import World, check_option_types

W = TypeVar("W", bound=type[World])

_WORLDS: dict[str, type[World]] = {}
PACKAGE = __name__.rpartition(".")[0]  # bridge.vla.worlds
# The package's modules that hold no world (the framework, and helpers of a world).
NOT_WORLDS = frozenset({"agents", "base", "babyai_recolour", "registry", "rollout", "spaces"})


def builtin_families() -> list[str]:
    """The worlds shipped in this package: every module of it that holds a world."""
    path = importlib.util.find_spec(PACKAGE).submodule_search_locations
    return sorted(m.name for m in pkgutil.iter_modules(path) if m.name not in NOT_WORLDS)


def register_world(family: str) -> Callable[[W], W]:
    """Class decorator: ``@register_world("reach")`` on a :class:`World` dataclass."""
    if not family or ":" in family:
        raise ConfigError(f"a world's family name must be non-empty and hold no ':', got {family!r}")

    def decorator(cls: W) -> W:
        if not (isinstance(cls, type) and issubclass(cls, World)):
            raise ConfigError(f"@register_world({family!r}) decorates World subclasses, not {cls!r}")
        known = _WORLDS.get(family)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ConfigError(f"world {family!r} is already registered by {known.__module__}.{known.__qualname__}")
        cls.family = family
        _WORLDS[family] = cls
        return cls

    return decorator


def get_world(name: str | World, **options: Any) -> World:
    """The world ``name`` with ``options`` (its dataclass fields); ``family:variant`` passes the variant first.

    A World instance is returned as it is, or with ``options`` applied.
    """
    if isinstance(name, World):
        return name.replace(**options) if options else name
    family, _, variant = name.partition(":")
    cls = _find(family)
    check_option_types(cls, options)
    args = (variant,) if variant else ()
    try:
        return cls(*args, **options)
    except TypeError as err:  # an option the world does not have, or a variant it does not take
        raise ConfigError(f"world {name!r} cannot be built with {options or 'no options'}: {err}") from None


def list_worlds() -> list[str]:
    """The registered world families, built-in and from plugins."""
    for family in builtin_families():
        _find(family)
    load_plugins()
    return sorted(_WORLDS)


def _find(family: str) -> type[World]:
    if family not in _WORLDS and family in builtin_families():
        importlib.import_module(f"{PACKAGE}.{family}")
    if family not in _WORLDS:
        load_plugins()
    if family not in _WORLDS:
        names = sorted({*_WORLDS, *builtin_families()})
        close = difflib.get_close_matches(family, names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownNameError(
            f"no world named {family!r}; {hint}known worlds: {', '.join(names)}. A world outside bridge registers "
            "itself with @register_world in a module named in BRIDGE_PLUGINS"
        )
    return _WORLDS[family]
