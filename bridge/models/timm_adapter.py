"""Any ``timm`` model behind the zoo's interface, for ``create_model("timm:<name>")``.

timm is imported when a model is built, not with this module, so the factory can import it for free.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from torch import Tensor, nn

from bridge.errors import MissingFileError, UnknownNameError
from bridge.models.base import EncoderOutput, ZooModel
from bridge.models.weights import read_state_dict


class TimmModel(ZooModel):
    """A timm model held as ``self.model``, with ``encode`` and the zoo's attributes."""

    # The timm model sits one level down: "model.<timm name>" here is "<timm name>" in timm's own state dict.
    timm_key_rules = [("model.", "")]

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

    def film_sites(self) -> list[str]:
        """The modules timm names as feature stages (``feature_info``), where it has them."""
        feature_info = getattr(self.model, "feature_info", None) or []
        return ["model." + info["module"] for info in feature_info if info.get("module")]

    def reset_classifier(self, num_classes: int) -> None:
        self.model.reset_classifier(num_classes)
        self.num_classes = num_classes


def _first_conv_in_chans(model: nn.Module) -> int:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3


def check_timm_name(name: str) -> None:
    """Refuse a name timm has no model of (``resnet18`` or ``resnet18.a1_in1k``), with the close names."""
    import timm

    models = timm.list_models()
    if name not in models and name.split(".")[0] not in models:
        close = difflib.get_close_matches(name, models, n=5)
        raise UnknownNameError(
            f"timm has no model {name!r}; "
            + (f"did you mean {', '.join(close)}?" if close else "see timm.list_models()")
        )


def create_timm_model(name: str, pretrained: bool = False, pretrained_file: str | None = None, **kwargs) -> TimmModel:
    """``timm.create_model`` with weights from, in order: ``pretrained_file``, the local Hugging Face
    cache (also with ``HF_HUB_OFFLINE=1``), the hub when online. Nothing is fetched unless ``pretrained``."""
    import timm

    check_timm_name(name)
    if pretrained_file is not None:
        if not Path(pretrained_file).is_file():
            raise MissingFileError(f"pretrained_file {pretrained_file} does not exist; check the path")
        # Read by bridge's own loader (weights_only, safetensors first): timm's would suggest weights_only=False.
        kwargs["pretrained_cfg_overlay"] = dict(state_dict=read_state_dict(pretrained_file))
    try:
        model = timm.create_model(name, pretrained=pretrained or pretrained_file is not None, **kwargs)
    except (OSError, RuntimeError, ValueError) as err:
        if not pretrained or pretrained_file is not None:
            raise
        raise MissingFileError(
            f"no pretrained weights for timm:{name} could be found ({type(err).__name__}: {err}). Give them one of "
            "three ways: (1) pretrained_file=/path/to/weights.safetensors, (2) the local Hugging Face cache "
            "(download once online, then HF_HUB_OFFLINE=1 reads it; HF_HOME sets where), (3) go online so timm can "
            "fetch them from the hub."
        ) from None
    return TimmModel(model)
