"""The timm or torchvision model a zoo model mirrors (its ``twin``), for weight conversion and comparisons."""

from __future__ import annotations

from torch import nn

from bridge.errors import ConfigError
from bridge.models.registry import model_info


def create_twin(name: str, **kwargs) -> nn.Module:
    """The timm or torchvision model that ``name`` mirrors, randomly initialised (no download)."""
    twin = model_info(name).twin
    if twin is None:
        raise ConfigError(f"{name} has no timm or torchvision twin; pick a model whose model_info(name).twin is set")
    library, twin_name = twin.split("/")
    if library == "timm":
        import timm

        return timm.create_model(twin_name, pretrained=False, **kwargs)
    import torchvision.models

    return getattr(torchvision.models, twin_name)(weights=None, **kwargs)
