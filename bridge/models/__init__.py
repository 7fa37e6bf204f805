"""The zoo. Importing this package registers every model family."""

from bridge.models import lenet, alexnet, vgg, resnet, vit  # noqa: F401, I001  (registers, in lineage order)
from bridge.models.base import EncoderOutput, ZooModel
from bridge.models.registry import (
    ModelInfo,
    create_model,
    create_model_for_input,
    list_models,
    model_info,
    register_model,
)
from bridge.models.timm_compat import export_weights, import_weights

__all__ = [
    "EncoderOutput",
    "ModelInfo",
    "ZooModel",
    "create_model",
    "create_model_for_input",
    "export_weights",
    "import_weights",
    "list_models",
    "model_info",
    "register_model",
]
