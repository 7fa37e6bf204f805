"""The zoo. Importing this package registers every built-in model family."""

from bridge.models import lenet, alexnet, vgg, resnet, vit, hybrid, film_cnn  # noqa: F401, I001  (registers, in lineage order)
from bridge.models.base import EncoderOutput, ZooModel
from bridge.models.factory import UnknownArgumentError, create_model, create_model_for_input
from bridge.models.registry import ModelInfo, list_models, model_info, register_model
from bridge.models.timm_adapter import TimmModel
from bridge.models.weights import (
    WeightsMismatchError,
    check_finite,
    export_weights,
    import_weights,
    load_file,
    read_state_dict,
)

__all__ = [
    "EncoderOutput",
    "ModelInfo",
    "TimmModel",
    "UnknownArgumentError",
    "WeightsMismatchError",
    "ZooModel",
    "check_finite",
    "create_model",
    "create_model_for_input",
    "export_weights",
    "import_weights",
    "list_models",
    "load_file",
    "model_info",
    "read_state_dict",
    "register_model",
]
