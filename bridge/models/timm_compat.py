"""Weights in from timm / torchvision and out to them.

Our names differ from timm's only where :class:`~bridge.nn.Residual` adds a level (``branch``,
``shortcut``, the two halves of a Transformer block). Each family lists the renames as prefix pairs, read
one way to import and the other way to export. AlexNet and VGG use torchvision's layout as they are.
"""

from __future__ import annotations

import difflib
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from bridge.models.base import EncoderOutput, ZooModel
from bridge.models.registry import model_info
from bridge.models.resnet import ResNet
from bridge.models.vit import VisionTransformer

# (ours, theirs) prefix templates; "{}" stands for a block or stage index.
KEY_RULES: dict[type[ZooModel], list[tuple[str, str]]] = {
    ResNet: [
        ("layer{}.{}.branch.", "layer{}.{}."),
        ("layer{}.{}.shortcut.", "layer{}.{}.downsample."),
    ],
    VisionTransformer: [
        ("blocks.{}.attn.branch.norm.", "blocks.{}.norm1."),
        ("blocks.{}.attn.branch.attn.", "blocks.{}.attn."),
        ("blocks.{}.mlp.branch.norm.", "blocks.{}.norm2."),
        ("blocks.{}.mlp.branch.mlp.", "blocks.{}.mlp."),
    ],
}


def _compile(template: str) -> re.Pattern:
    return re.compile("^" + r"(\d+)".join(re.escape(part) for part in template.split("{}")))


def _renamer(rules: list[tuple[str, str]]):
    # The longest source prefix first, so "layer1.0.downsample." wins over "layer1.0.".
    compiled = [(_compile(src), dst) for src, dst in sorted(rules, key=lambda r: -len(r[0]))]

    def rename(key: str) -> str:
        for pattern, dst in compiled:
            if m := pattern.match(key):
                return dst.format(*m.groups()) + key[m.end() :]
        return key

    return rename


def _rules(model: nn.Module) -> list[tuple[str, str]]:
    return next((rules for cls, rules in KEY_RULES.items() if isinstance(model, cls)), [])


class WeightsMismatchError(ValueError):
    """The weights do not fit the architecture: the message lists what is missing, unexpected or mis-shaped."""


def read_state_dict(source: str | Path | Mapping[str, Tensor] | nn.Module) -> dict[str, Tensor]:
    """A state dict from a module, a mapping, or a ``.safetensors`` / ``.pth`` file (never running pickled code)."""
    if isinstance(source, nn.Module):
        return dict(source.state_dict())
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} does not exist")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        try:
            source = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise ValueError(
                f"refusing to load {path}: it holds pickled objects that would run code when loaded, not "
                "plain tensors. Re-save it as .safetensors or as a plain state dict from a trusted environment."
            ) from err
    if not isinstance(source, Mapping):
        raise TypeError(f"expected a module, a state dict or a weights file, got {type(source).__name__}")
    for wrapper in ("state_dict", "model"):  # Lightning checkpoints, timm training checkpoints
        if isinstance(source.get(wrapper), Mapping):
            source = source[wrapper]
    return {k.removeprefix("module."): v for k, v in source.items() if isinstance(v, Tensor)}


def import_weights(model: ZooModel, source, drop_head: bool = False) -> ZooModel:
    """Load timm, torchvision or bridge weights into ``model`` (in place) and return it.

    ``source`` is a module, a state dict or a ``.safetensors``/``.pth`` file. A ViT built for another
    image or patch size gets its position and patch embeddings resampled exactly as timm does.
    ``drop_head=True`` keeps the model's own (freshly initialised) classifier, e.g. for other ``num_classes``.
    """
    theirs = read_state_dict(source)
    ours = model.state_dict()
    to_ours = _renamer([(t, o) for o, t in _rules(model)])
    # Our own names, timm's/torchvision's, or either inside an ImageClassifier checkpoint ("model." prefix):
    # take the reading that matches the most of the model's keys.
    unwrapped = {k.removeprefix("model."): v for k, v in theirs.items() if k.startswith("model.")}
    candidates = [sd for base in (theirs, unwrapped) for sd in (base, {to_ours(k): v for k, v in base.items()})]
    state = max(candidates, key=lambda sd: len(sd.keys() & ours.keys()))
    if isinstance(model, VisionTransformer):
        state = _resample_vit_embeddings(model, state)
    if drop_head:
        head = model.head_name + "."
        state = {k: v for k, v in state.items() if not k.startswith(head)}
        ours = {k: v for k, v in ours.items() if not k.startswith(head)}
    _check_fits(model, ours, state)
    model.load_state_dict(state, strict=not drop_head)
    return model


def export_weights(model: ZooModel) -> dict[str, Tensor]:
    """Our state dict under timm's names (torchvision's for AlexNet/VGG), loadable strictly into the twin."""
    to_theirs = _renamer(_rules(model))
    return {to_theirs(k): v for k, v in model.state_dict().items()}


def _resample_vit_embeddings(model: VisionTransformer, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Weights trained at another resolution: timm's own resampling, so results match ``timm.create_model``."""
    from timm.layers import resample_abs_pos_embed, resample_patch_embed

    state = dict(state)
    weight = state.get("patch_embed.proj.weight")
    pos = state.get("pos_embed")
    grid = list(model.patch_embed.grid_size)
    if pos is not None:
        # The checkpoint's grid, as timm infers it: the twins' 224-pixel input over the checkpoint's patch
        # size, when that accounts for every token (else a square grid is assumed). A 28x7 grid has the same
        # 196 tokens as 14x14 and must still be resampled.
        old = None
        if weight is not None and weight.ndim == 4:
            candidate = [224 // weight.shape[-2], 224 // weight.shape[-1]]
            if candidate[0] * candidate[1] == pos.shape[1] - model.num_prefix_tokens:
                old = candidate
        if pos.shape != model.pos_embed.shape or (old is not None and old != grid):
            state["pos_embed"] = resample_abs_pos_embed(
                pos, new_size=grid, old_size=old, num_prefix_tokens=model.num_prefix_tokens
            )
    kernel = model.patch_embed.proj.weight.shape[-2:]
    if weight is not None and weight.ndim == 4 and weight.shape[-2:] != kernel:
        state["patch_embed.proj.weight"] = resample_patch_embed(weight, list(kernel))
    return state


def _check_fits(model: nn.Module, ours: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> None:
    missing = sorted(ours.keys() - state.keys())
    unexpected = sorted(state.keys() - ours.keys())
    misshaped = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(ours[k].shape)}"
        for k in sorted(ours.keys() & state.keys())
        if state[k].shape != ours[k].shape
    ]
    if missing or unexpected or misshaped:

        def listing(title: str, items: list[str]) -> str:
            shown = "\n    ".join(items[:12]) + (f"\n    ... and {len(items) - 12} more" if len(items) > 12 else "")
            return f"\n  {title} ({len(items)}):\n    {shown}" if items else ""

        raise WeightsMismatchError(
            f"these weights do not fit {type(model).__name__}:"
            + listing("missing", missing)
            + listing("unexpected", unexpected)
            + listing("mis-shaped", misshaped)
            + "\n  Check that the model name and its settings (num_classes, depth, widths) match the checkpoint;"
            " pass drop_head=True to keep a new classifier."
        )


def create_twin(name: str, **kwargs) -> nn.Module:
    """The timm or torchvision model that ``name`` mirrors, randomly initialised (no download)."""
    twin = model_info(name).twin
    if twin is None:
        raise ValueError(f"{name} has no timm or torchvision twin")
    library, twin_name = twin.split("/")
    if library == "timm":
        import timm

        return timm.create_model(twin_name, pretrained=False, **kwargs)
    import torchvision.models

    return getattr(torchvision.models, twin_name)(weights=None, **kwargs)


class TimmModel(ZooModel):
    """Any ``timm`` model behind the zoo's interface (``encode`` included), for ``timm:<name>``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        cfg = getattr(model, "pretrained_cfg", {})
        self.num_classes, self.num_features = model.num_classes, model.num_features
        self.in_chans = _first_conv_in_chans(model)
        self.head_name = "model." + cfg.get("classifier", "head")
        self.num_prefix_tokens = getattr(model, "num_prefix_tokens", 0)
        self.mean, self.std = cfg.get("mean"), cfg.get("std")
        if cfg.get("fixed_input_size"):
            self.fixed_input_size = tuple(cfg["input_size"][-2:])

    def forward_features(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.model.forward_features(x)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        return self.model.forward_head(features, pre_logits=pre_logits)

    def encode(self, x: Tensor) -> EncoderOutput:
        features = self.forward_features(x)
        pooled = self.model.forward_head(features, pre_logits=True)
        if features.ndim == 4:  # CNN: (B, C, H, W) -> (B, H*W, C)
            return EncoderOutput(features.flatten(2).transpose(1, 2), pooled)
        return EncoderOutput(features[:, self.num_prefix_tokens :], pooled)

    def reset_classifier(self, num_classes: int) -> None:
        self.model.reset_classifier(num_classes)
        self.num_classes = num_classes


def _first_conv_in_chans(model: nn.Module) -> int:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3


def create_timm_model(name: str, pretrained: bool = False, pretrained_file: str | None = None, **kwargs) -> TimmModel:
    """``timm.create_model`` with weights from, in order: ``pretrained_file``, the local Hugging Face
    cache (also with ``HF_HUB_OFFLINE=1``), the hub when online. Nothing is fetched unless ``pretrained``."""
    import timm

    if name not in timm.list_models() and name.split(".")[0] not in timm.list_models():
        close = difflib.get_close_matches(name, timm.list_models(), n=5)
        raise KeyError(f"timm has no model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    if pretrained_file is not None:
        if not Path(pretrained_file).is_file():
            raise FileNotFoundError(f"pretrained_file {pretrained_file} does not exist")
        kwargs["pretrained_cfg_overlay"] = dict(file=str(pretrained_file))
    try:
        model = timm.create_model(name, pretrained=pretrained or pretrained_file is not None, **kwargs)
    except (OSError, RuntimeError, ValueError) as err:
        if not pretrained or pretrained_file is not None:
            raise
        raise FileNotFoundError(
            f"no pretrained weights for timm:{name} could be found ({type(err).__name__}: {err}). Give them one of "
            "three ways: (1) pretrained_file=/path/to/weights.safetensors, (2) the local Hugging Face cache "
            "(download once online, then HF_HUB_OFFLINE=1 reads it; HF_HOME sets where), (3) go online so timm can "
            "fetch them from the hub."
        ) from None
    return TimmModel(model)
