"""Image data as Hugging Face ``datasets`` (bundled digits, generated shapes, any hub id or local folder)
and the LightningDataModule that serves it. Depends on nothing else in bridge."""

from bridge.data.datamodule import ImageDataModule
from bridge.data.generated import build_digits, build_shapes
from bridge.data.shapes import CLASS_NAMES, COLOURS, SHAPES, draw_shape, shape_mask
from bridge.data.sources import ImageSplits, find_columns, load_source
from bridge.data.transforms import AUGMENTATIONS, build_transform

__all__ = [
    "AUGMENTATIONS",
    "CLASS_NAMES",
    "COLOURS",
    "SHAPES",
    "ImageDataModule",
    "ImageSplits",
    "build_digits",
    "build_shapes",
    "build_transform",
    "draw_shape",
    "find_columns",
    "load_source",
    "shape_mask",
]
