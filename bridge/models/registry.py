"""The model registry: one-line builders registered with the facts stored beside them."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from dataclasses import dataclass
from typing import Callable

from bridge.models.base import ZooModel


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a registered model at its default settings; the tests check ``params`` exactly."""

    name: str
    family: str
    params: int
    input_size: tuple[int, int, int]  # (C, H, W) the model is built for
    twin: str | None  # "timm/<name>" or "torchvision/<name>": the same network elsewhere, weights compatible
    builder: Callable[..., ZooModel]


_MODELS: dict[str, ModelInfo] = {}


def register_model(*, params: int, input_size: tuple[int, int, int], twin: str | None = None):
    """Decorator for a builder ``name(**kwargs) -> ZooModel``; its function name is the model name."""

    def decorator(fn: Callable[..., ZooModel]) -> Callable[..., ZooModel]:
        family = fn.__module__.rsplit(".", 1)[-1]
        _MODELS[fn.__name__] = ModelInfo(fn.__name__, family, params, input_size, twin, fn)
        return fn

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern``, in registration (lineage) order."""
    return [name for name in _MODELS if fnmatch.fnmatch(name, pattern)]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; an unknown name raises a KeyError listing the closest names."""
    try:
        return _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _MODELS, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see `python -m bridge zoo list`"
        raise KeyError(f"unknown model {name!r}; {hint}") from None


def create_model(name: str, **kwargs) -> ZooModel:
    """Build a registered model, e.g. ``create_model("resnet20", skip=False, num_classes=4)``.

    ``timm:<name>`` builds any timm model behind the same interface (``pretrained``, ``pretrained_file``
    as in :func:`bridge.models.timm_compat.create_timm_model`).
    """
    if name.startswith("timm:"):
        from bridge.models.timm_compat import create_timm_model  # timm_compat imports this module

        return create_timm_model(name.removeprefix("timm:"), **kwargs)
    info = model_info(name)
    try:
        return info.builder(**kwargs)
    except TypeError as err:
        accepted = _accepted_kwargs(info.builder)
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise TypeError(f"{name} does not take {', '.join(unknown)}; it takes {', '.join(accepted)}") from None
        raise err


def _accepted_kwargs(builder: Callable[..., ZooModel]) -> list[str]:
    """Keyword arguments a builder accepts: its own and those of the model class it returns."""
    signature = inspect.signature(builder, eval_str=True)
    own = signature.parameters
    names = [n for n, p in own.items() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    model_cls = signature.return_annotation
    if isinstance(model_cls, type):
        names += [n for n in inspect.signature(model_cls).parameters if n != "self" and n not in names]
    return names


def create_model_for_input(name: str, input_size: tuple[int, int, int], num_classes: int, **kwargs) -> ZooModel:
    """``create_model`` sized for ``(C, H, W)`` images: a ViT gets ``img_size`` and 8x8 patch tokens."""
    family = "timm" if name.startswith("timm:") else model_info(name).family
    if family == "vit":
        kwargs = {"img_size": input_size[1], "patch_size": max(1, input_size[1] // 8), **kwargs}
    return create_model(name, in_chans=input_size[0], num_classes=num_classes, **kwargs)
