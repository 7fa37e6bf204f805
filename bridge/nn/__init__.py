"""Building blocks shared by every model in the zoo and by the VLA policy."""

from bridge.nn.attention import Attention
from bridge.nn.mlp import Mlp
from bridge.nn.residual import Residual, set_skip
from bridge.nn.shortcut_options import SHORTCUT_OPTIONS, PadShortcut, make_shortcut, projection
from bridge.nn.spatial_softmax import SpatialSoftmax
from bridge.nn.transformer import TransformerBlock

__all__ = [
    "Attention",
    "Mlp",
    "PadShortcut",
    "Residual",
    "SHORTCUT_OPTIONS",
    "SpatialSoftmax",
    "TransformerBlock",
    "make_shortcut",
    "projection",
    "set_skip",
]
