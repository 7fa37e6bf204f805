"""bridge: from LeNet-5 to Transformers on one residual primitive, and on into a small VLA policy.

A light face: ``import bridge`` imports no torch. The names below load their module on first use (PEP 562).
"""

from __future__ import annotations

import importlib

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


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # found directly next time
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
