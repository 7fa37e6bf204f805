"""The model registry: one-line builders registered with the facts stored beside them.

A leaf: it imports no model family. Each family's file registers its builders when imported (the
``bridge.models`` package imports the built-in ones; plugins named in ``BRIDGE_PLUGINS`` or the
``bridge.plugins`` entry points are imported before a name is declared unknown).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from bridge.errors import ConfigError, UnknownNameError
from bridge.models.base import ZooModel
from bridge.plugins import load_plugins


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a registered model at its default settings; the tests check ``params`` exactly."""

    name: str
    family: str  # the module that registered it, e.g. "resnet"
    params: int
    input_size: tuple[int, int, int]  # (C, H, W) the model is built for
    twin: str | None  # "timm/<name>" or "torchvision/<name>": the same network elsewhere, weights compatible
    builder: Callable[..., ZooModel]
    model_cls: type[ZooModel] | None  # the class the builder returns (its return annotation), if it names one


_MODELS: dict[str, ModelInfo] = {}


def register_model(*, params: int, input_size: tuple[int, int, int], twin: str | None = None):
    """Decorator for a builder ``name(**kwargs) -> SomeZooModel``; its function name is the model name."""

    def decorator(fn: Callable[..., ZooModel]) -> Callable[..., ZooModel]:
        name = fn.__name__
        if name in _MODELS and _MODELS[name].builder.__module__ != fn.__module__:
            raise ConfigError(
                f"model {name!r} from {fn.__module__} is already registered by {_MODELS[name].builder.__module__}; "
                "rename the builder"
            )
        family = fn.__module__.rsplit(".", 1)[-1]
        _MODELS[name] = ModelInfo(name, family, params, input_size, twin, fn, _returned_class(fn))
        return fn

    return decorator


def _returned_class(fn: Callable) -> type[ZooModel] | None:
    try:
        cls = inspect.signature(fn, eval_str=True).return_annotation
    except (NameError, SyntaxError, TypeError):  # an annotation that names nothing importable here
        return None
    return cls if isinstance(cls, type) and issubclass(cls, ZooModel) else None


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern``, in registration (lineage) order, plugins last."""
    load_plugins()
    return [name for name in _MODELS if fnmatch.fnmatch(name, pattern)]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; an unknown name raises an UnknownNameError (a KeyError) listing
    the closest names, after the plugins had their chance to register it."""
    if name not in _MODELS:
        load_plugins()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see `python -m bridge zoo list`"
        raise UnknownNameError(
            f"unknown model {name!r}; {hint} (a model of your own: import its module first, or name it in "
            "BRIDGE_PLUGINS)"
        )
    return _MODELS[name]
