"""Build a registered model by name, or any timm model as ``timm:<name>``; arguments are checked first."""

from __future__ import annotations

import inspect

from bridge.errors import ConfigError
from bridge.models.base import ZooModel
from bridge.models.registry import ModelInfo, model_info
from bridge.models.timm_adapter import TimmModel, create_timm_model


class UnknownArgumentError(ConfigError, TypeError):
    """A keyword the model does not take; a TypeError too, as Python raises for an unexpected keyword."""


def create_model(name: str, **kwargs) -> ZooModel:
    """Build a registered model, e.g. ``create_model("resnet20", skip=False, num_classes=4)``.

    ``timm:<name>`` builds any timm model behind the same interface (``pretrained``, ``pretrained_file``
    as in :func:`bridge.models.timm_adapter.create_timm_model`).
    """
    if name.startswith("timm:"):
        return create_timm_model(name.removeprefix("timm:"), **kwargs)
    info = model_info(name)
    accepted = _accepted_kwargs(info)
    unknown = sorted(set(kwargs) - set(accepted)) if accepted is not None else []
    if unknown:
        raise UnknownArgumentError(f"{name} does not take {', '.join(unknown)}; it takes {', '.join(accepted)}")
    return info.builder(**kwargs)


def create_model_for_input(name: str, input_size: tuple[int, int, int], num_classes: int, **kwargs) -> ZooModel:
    """``create_model`` sized for ``(C, H, W)`` images, as the model's class says (a ViT: ``img_size`` and
    8x8 patch tokens); ``kwargs`` win over those settings."""
    cls = TimmModel if name.startswith("timm:") else model_info(name).model_cls or ZooModel
    kwargs = {**cls.input_kwargs(input_size), **kwargs}
    return create_model(name, in_chans=input_size[0], num_classes=num_classes, **kwargs)


def _accepted_kwargs(info: ModelInfo) -> list[str] | None:
    """Keyword arguments a builder accepts: its own and those of the model class it returns (None: unknown,
    a builder that passes ``**kwargs`` on to something it does not name)."""
    params = inspect.signature(info.builder).parameters
    names = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    if len(names) == len(params):
        return names
    if info.model_cls is None:
        return None
    cls_params = inspect.signature(info.model_cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in cls_params.values()):
        return None
    return names + [n for n in cls_params if n not in names]
