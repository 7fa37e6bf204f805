"""Any zoo or timm model as the policy's vision encoder: built with its weights, probed, FiLM-conditioned.

Nothing here knows a model family: the encoder says where FiLM may act (``film_sites()``), and a probe
with one blank frame reads its token grid and widths.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from bridge.errors import ConfigError, CorruptFileError
from bridge.models import ZooModel, create_model, import_weights, load_file, model_info
from bridge.nn.film import FiLM
from bridge.vla.policy.configuration import PolicyConfig


def build_encoder(c: PolicyConfig, load_weights: bool = True) -> ZooModel:
    """The vision encoder, its classifier removed (``encode`` never uses it).

    ``load_weights=False`` skips the first weights (``pretrained``, ``pretrained_file``): a saved policy
    is loaded next and brings its own, so the original files need not exist any more.
    """
    kwargs = dict(c.encoder_kwargs)
    file = c.pretrained_file if load_weights else None
    ckpt = file is not None and Path(file).suffix == ".ckpt"
    weights = classifier_checkpoint_weights(file, c.encoder) if ckpt else file
    if c.encoder.startswith("timm:"):
        pretrained = c.pretrained and load_weights
        encoder = create_model(
            c.encoder, pretrained=pretrained, pretrained_file=None if ckpt else file, num_classes=0, **kwargs
        )
        if ckpt:
            import_weights(encoder, weights, drop_head=True)
    else:
        encoder = create_model(c.encoder, **kwargs)
        if weights is not None:
            import_weights(encoder, weights, drop_head=True)
        elif c.pretrained and load_weights:
            raise ConfigError(
                f"bridge's own {c.encoder} has no published weights; set pretrained_file (weights or an "
                f"ImageClassifier .ckpt) or use encoder: timm:{c.encoder}"
            )
    parent, _, child = encoder.head_name.rpartition(".")
    setattr(encoder.get_submodule(parent), child, nn.Identity())
    return encoder


def classifier_checkpoint_weights(path: str, encoder: str) -> dict[str, Tensor]:
    """The ``model.`` weights of an ImageClassifier checkpoint (read with ``weights_only=True``)."""
    checkpoint = load_file(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    if "state_dict" not in checkpoint or "model" not in hparams:
        raise CorruptFileError(f"{path} is not an ImageClassifier checkpoint (no state_dict with the model's name)")
    if hparams["model"] != encoder and not serves_as_backbone(hparams["model"], encoder):
        kwargs = hparams.get("model_kwargs") or {}
        raise ConfigError(
            f"{path} holds a {hparams['model']} classifier but the policy's encoder is {encoder}; "
            f"set encoder: {hparams['model']} (and its model_kwargs as encoder_kwargs: {kwargs})"
        )
    return {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}


def serves_as_backbone(classifier: str, encoder: str) -> bool:
    """Whether a ``classifier`` model's weights fit the convolutional half of ``encoder`` (a hybrid's
    ``backbone_family``, e.g. any bridge ResNet for ``resnet_vit``)."""
    if classifier.startswith("timm:") or encoder.startswith("timm:"):
        return False
    family = getattr(model_info(encoder).model_cls, "backbone_family", None)
    return family is not None and model_info(classifier).family == family


class EncoderFiLM(nn.ModuleDict):
    """FiLM after each of the encoder's ``film_sites()``: the features themselves become "where is the red circle".

    Forward hooks on the sites apply it while :meth:`conditioned` is active; outside it they do nothing.
    """

    def __init__(self, encoder: ZooModel, sites: list[str], channels: list[int], cond_dim: int) -> None:
        super().__init__({_key(site): FiLM(cond_dim, ch) for site, ch in zip(sites, channels)})
        self._cond: Tensor | None = None
        for site in sites:
            encoder.get_submodule(site).register_forward_hook(partial(self._film, _key(site)))

    @contextmanager
    def conditioned(self, cond: Tensor | None) -> Iterator[None]:
        self._cond = cond
        try:
            yield
        finally:
            self._cond = None

    def _film(self, key: str, module: nn.Module, inputs, output: Tensor) -> Tensor | None:
        return None if self._cond is None else self[key](output, self._cond)


def _key(site: str) -> str:
    return site.replace(".", "_")  # ModuleDict keys cannot hold dots


class EncoderProbe(NamedTuple):
    grid: tuple[int, int]  # the token grid (H, W)
    dim: int  # token width
    pooled_dim: int  # the pooled vector's width (wider than the tokens behind a conv head, e.g. MobileNetV3)
    site_channels: list[int]  # channels at each FiLM site


@torch.no_grad()
def probe_encoder(encoder: ZooModel, c: PolicyConfig, sites: list[str]) -> EncoderProbe:
    """One blank frame through the encoder: its token grid and width, its FiLM sites' widths, or a clear size error."""
    side = c.input_size or c.image_size
    shapes: dict[str, torch.Size] = {}
    handles = [
        encoder.get_submodule(site).register_forward_hook(lambda m, i, o, site=site: shapes.__setitem__(site, o.shape))
        for site in sites
    ]
    was_training = encoder.training
    encoder.eval()
    try:
        x = torch.zeros(1, encoder.in_chans, side, side)
        features, out = encoder.forward_features(x), encoder.encode(x)
    except (ValueError, RuntimeError) as err:
        fixed = getattr(encoder, "fixed_input_size", None)
        fix = f"resize the frames (input_size: {fixed[0]})" if fixed else "set input_size to a size it takes"
        raise ConfigError(
            f"encoder {c.encoder} cannot take {side}x{side} frames: {err}. Build it for this size "
            f"(encoder_kwargs, e.g. img_size: {side} for a ViT) or {fix}"
        ) from None
    finally:
        encoder.train(was_training)
        for handle in handles:
            handle.remove()
    n, dim = out.tokens.shape[1:]
    if features.ndim == 4:
        grid = tuple(features.shape[-2:])
    else:
        side = math.isqrt(n)
        if side * side != n:
            raise ConfigError(f"encoder {c.encoder} gives {n} tokens, which do not form a square grid")
        grid = (side, side)
    channels = [shapes[site][1] if len(shapes[site]) == 4 else shapes[site][-1] for site in sites]
    return EncoderProbe(grid, dim, out.pooled.shape[-1], channels)


def pixel_normalisation(encoder: ZooModel, c: PolicyConfig) -> tuple[list[float], list[float]]:
    """Pixel mean and std: the config's, else a pretrained timm model's own, else 0.5 (bridge's data default)."""
    pretrained = c.pretrained or c.pretrained_file is not None
    result = []
    for given, own in ((c.mean, getattr(encoder, "mean", None)), (c.std, getattr(encoder, "std", None))):
        value = given if given is not None else own if pretrained and own is not None else 0.5
        result.append([float(value)] * 3 if isinstance(value, (int, float)) else [float(v) for v in value])
    return result[0], result[1]
