"""Multi-stage pipelines built from the bridge package: ``python -m bridge run <recipe>``.

A recipe is a module (or a package) of this folder that defines ``main(argv)``; the first line of its docstring
is its summary in ``python -m bridge run --help``. Nothing lists them by hand, so a new recipe is one file.
A recipe outside this folder registers itself from a plugin module (see :mod:`bridge.plugins`)::

    from recipes import register_recipe

    @register_recipe("hello")
    def main(argv: list[str]) -> None:
        \"\"\"Say hello.\"\"\"
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import inspect
import pkgutil
from collections.abc import Callable
from pathlib import Path

from bridge.errors import ConfigError, UnknownNameError
from bridge.plugins import load_plugins

Main = Callable[[list[str]], None]
_registered: dict[str, Main] = {}


def register_recipe(name: str) -> Callable[[Main], Main]:
    """Decorator: ``main(argv)`` becomes ``python -m bridge run <name>``."""

    def register(main: Main) -> Main:
        if name in bundled_recipes() or _registered.get(name, main) is not main:
            raise ConfigError(f"a recipe named {name!r} exists already; register yours under another name")
        _registered[name] = main
        return main

    return register


def bundled_recipes() -> dict[str, str]:
    """This package's recipes and their summaries, read from their source: importing them would import torch."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        origin = importlib.util.find_spec(f"{__name__}.{info.name}").origin
        tree = ast.parse(Path(origin).read_text())
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            found[info.name] = _summary(ast.get_docstring(tree))
    return found


def list_recipes() -> dict[str, str]:
    """Every recipe, the plugins' included, with its one-line summary, sorted by name."""
    load_plugins()
    found = bundled_recipes()
    for name, main in _registered.items():
        found[name] = _summary(inspect.getdoc(main) or inspect.getdoc(inspect.getmodule(main)))
    return dict(sorted(found.items()))


def get_recipe(name: str) -> Main:
    """The ``main(argv)`` of the recipe ``name``."""
    if name in bundled_recipes():
        return importlib.import_module(f"{__name__}.{name}").main
    load_plugins()
    if name in _registered:
        return _registered[name]
    known = list_recipes()
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise UnknownNameError(
        f"no recipe named {name!r}; {hint}the recipes are: {', '.join(known)} (python -m bridge run --help)"
    )


def _summary(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""
