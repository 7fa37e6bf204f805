"""The world registry: a world is found by name (``reach``, ``babyai:GoToLocal``), the way LeRobot finds env configs.

Built-in worlds are imported on first use (a world's module pulls in its simulator); a world outside the
package registers itself when its module is imported, which ``BRIDGE_PLUGINS`` arranges (see bridge.plugins).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from bridge.errors import ConfigError, UnknownNameError
from bridge.plugins import load_plugins
from bridge.vla.world import World

W = TypeVar("W", bound=type[World])

_WORLDS: dict[str, type[World]] = {}
# family -> module, imported when first asked for
BUILTIN: dict[str, str] = {"reach": "bridge.vla.reach", "babyai": "bridge.vla.babyai"}


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
    args = (variant,) if variant else ()
    try:
        return cls(*args, **options)
    except TypeError as err:  # an option the world does not have, or a variant it does not take
        raise ConfigError(f"world {name!r} cannot be built with {options or 'no options'}: {err}") from None


def list_worlds() -> list[str]:
    """The registered world families, built-in and from plugins."""
    for family in BUILTIN:
        _find(family)
    load_plugins()
    return sorted(_WORLDS)


def _find(family: str) -> type[World]:
    if family not in _WORLDS and family in BUILTIN:
        importlib.import_module(BUILTIN[family])
    if family not in _WORLDS:
        load_plugins()
    if family not in _WORLDS:
        names = sorted({*_WORLDS, *BUILTIN})
        close = difflib.get_close_matches(family, names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownNameError(
            f"no world named {family!r}; {hint}known worlds: {', '.join(names)}. A world outside bridge registers "
            "itself with @register_world in a module named in BRIDGE_PLUGINS"
        )
    return _WORLDS[family]
