"""Image data as Hugging Face ``datasets`` (bundled digits, generated shapes, any hub id or local folder)
and the LightningDataModule that serves it. Depends on nothing else in bridge.

A light face: the names below load their module on first use (PEP 562), so ``import bridge.data`` (and the
world, which draws with :mod:`bridge.data.shapes`) imports neither Lightning nor ``datasets``.
"""

from __future__ import annotations

from bridge.lazy import lazy_attributes

_LAZY = {
    "ImageDataModule": "datamodule",
    "build_digits": "generated",
    "build_shapes": "generated",
    "CLASS_NAMES": "shapes",
    "COLOURS": "shapes",
    "SHAPES": "shapes",
    "draw_shape": "shapes",
    "shape_mask": "shapes",
    "ImageSplits": "sources",
    "find_columns": "sources",
    "load_source": "sources",
    "AUGMENTATIONS": "transforms",
    "build_transform": "transforms",
}
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, {name: f"{__name__}.{module}" for name, module in _LAZY.items()})
