"""Extensions outside the package: modules that register encoders, worlds or recipes when imported.

A plugin is any importable module. It is found two ways: the ``BRIDGE_PLUGINS`` environment variable
(comma-separated module names, e.g. ``BRIDGE_PLUGINS=my_encoders,my_world``) and the ``bridge.plugins``
entry-point group of installed packages. Registries call :func:`load_plugins` before they report a name
as unknown, so a plugin costs nothing until it is needed.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from bridge.errors import ConfigError

ENV_VAR = "BRIDGE_PLUGINS"
ENTRY_POINT_GROUP = "bridge.plugins"


def plugin_modules() -> list[str]:
    """The plugin module names, from the environment first, then from installed entry points."""
    named = [m.strip() for m in os.environ.get(ENV_VAR, "").split(",") if m.strip()]
    return named + [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]


def load_plugins() -> list[str]:
    """Import every plugin module (idempotent: Python imports each module once); return their names."""
    names = plugin_modules()
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(
                f"plugin module {name!r} (from {ENV_VAR} or the {ENTRY_POINT_GROUP!r} entry points) cannot be "
                f"imported: {err}. Put its folder on PYTHONPATH or fix the name in {ENV_VAR}"
            ) from None
    return names
