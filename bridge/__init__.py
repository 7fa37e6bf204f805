"""bridge: from LeNet-5 to Transformers on one residual primitive, and on into a small VLA policy.

A light face: ``import bridge`` imports no torch. The names below load their module on first use (PEP 562).
"""

from __future__ import annotations

from bridge.lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "EncoderOutput": "bridge.models",
    "create_model": "bridge.models",
    "export_weights": "bridge.models",
    "import_weights": "bridge.models",
    "list_models": "bridge.models",
    "Residual": "bridge.nn",
}
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
