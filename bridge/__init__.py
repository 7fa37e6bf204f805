"""bridge: from LeNet-5 to Transformers on one residual primitive, and on into a small VLA policy."""

from bridge.models import EncoderOutput, create_model, export_weights, import_weights, list_models
from bridge.nn import Residual

__version__ = "0.1.0"
__all__ = ["EncoderOutput", "Residual", "create_model", "export_weights", "import_weights", "list_models"]
