"""The generated sources, ``digits`` and ``shapes``: built once by ``Dataset.from_generator`` into the cache.

Each split is its own cached Arrow dataset. Its fingerprint hashes the split's parameters and the
source text of this module and of :mod:`bridge.data.shapes`, so editing the drawing code rebuilds
the data instead of serving stale images; a second build with the same parameters only memory-maps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import PIL.Image
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
from datasets.fingerprint import Hasher
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from bridge.data import shapes
from bridge.data.cache import resolve_cache_dir
from bridge.data.shapes import BACKGROUND, CLASS_NAMES, CLASSES, draw_shape
from bridge.errors import ConfigError

SPLITS = ("train", "validation", "test")

DIGITS_SIZE = 32
# 1797 images split 70/10/20, stratified by class with a fixed seed: every run sees the same test set.
DIGITS_SPLIT_SIZES = {"train": 1257, "validation": 180, "test": 360}
_DIGITS_SPLIT_SEED = 0

SHAPES_SIZE = 64
SHAPES_PER_SPLIT = (6000, 1200, 1200)  # train, validation, test; multiples of 12 keep classes balanced
SHAPES_RADIUS = (0.1, 0.25)  # range of the shape radius, as a fraction of the image size

_CODE_HASH = Hasher.hash([Path(__file__).read_text(), Path(shapes.__file__).read_text()])


def build_digits(cache_dir: str | os.PathLike | None = None) -> DatasetDict:
    """scikit-learn's bundled handwritten digits (8x8, 17 grey levels) as 32x32 greyscale, labels 0-9.

    Splits: train 1257, validation 180, test 360 (70/10/20 of 1797, stratified, fixed seed).
    """
    features = Features({"image": Image(), "label": ClassLabel(names=[str(d) for d in range(10)])})
    return DatasetDict({split: _generate(_digits_examples, features, cache_dir, split=split) for split in SPLITS})


def build_shapes(
    image_size: int = SHAPES_SIZE,
    per_split: tuple[int, int, int] = SHAPES_PER_SPLIT,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> DatasetDict:
    """One coloured shape per image on the plain :data:`~bridge.data.shapes.BACKGROUND`; 12 (colour, shape) classes.

    No noise and no distractors: the VLA world draws its objects with the same function on the same
    background, so clean images are the distribution that transfers; a second shape would make the
    label ambiguous, and pixel noise makes each PNG ~40x larger and ~10x slower to write.

    Shape, colour, size (radius 10-25% of ``image_size``) and position (fully inside) are drawn from
    ``seed``; each split has its own stream, so the splits never repeat each other.
    """
    if image_size < 16:
        raise ConfigError(f"shapes needs image_size >= 16 to tell a triangle from a circle, got {image_size}")
    if len(per_split) != len(SPLITS) or min(per_split) < 1:
        raise ConfigError(f"per_split must be three positive counts (train, validation, test), got {per_split}")
    features = Features({"image": Image(), "label": ClassLabel(names=list(CLASS_NAMES))})
    return DatasetDict(
        {
            split: _generate(
                _shapes_examples, features, cache_dir, split=split, count=count, image_size=image_size, seed=seed
            )
            for split, count in zip(SPLITS, per_split, strict=True)
        }
    )


def _generate(generator: Callable[..., Iterator[dict]], features: Features, cache_dir, **gen_kwargs) -> Dataset:
    """Build (or load from the cache) one split; datasets shows its own progress bar while generating."""
    fingerprint = Hasher.hash([generator.__name__, gen_kwargs, _CODE_HASH])
    return Dataset.from_generator(
        generator,
        features=features,
        cache_dir=str(resolve_cache_dir(cache_dir)),
        gen_kwargs=gen_kwargs,  # no list values: datasets would treat a list as shards
        split=gen_kwargs["split"],
        fingerprint=fingerprint,
    )


def _digits_examples(split: str) -> Iterator[dict]:
    digits = load_digits()
    for i in _digits_split_indices(digits.target)[split]:
        pixels = np.round(digits.images[i] * (255 / 16)).astype(np.uint8)  # ink is bright, as in MNIST
        # Bilinear, not nearest: smooth strokes rather than 4x4 blocks whose edges the filters would learn.
        image = PIL.Image.fromarray(pixels).resize((DIGITS_SIZE, DIGITS_SIZE), PIL.Image.Resampling.BILINEAR)
        yield {"image": image, "label": int(digits.target[i])}


def _digits_split_indices(target: np.ndarray) -> dict[str, np.ndarray]:
    index = np.arange(len(target))
    rest, test = train_test_split(
        index, test_size=DIGITS_SPLIT_SIZES["test"], stratify=target, random_state=_DIGITS_SPLIT_SEED
    )
    train, validation = train_test_split(
        rest, test_size=DIGITS_SPLIT_SIZES["validation"], stratify=target[rest], random_state=_DIGITS_SPLIT_SEED
    )
    return {"train": np.sort(train), "validation": np.sort(validation), "test": np.sort(test)}


def _shapes_examples(split: str, count: int, image_size: int, seed: int) -> Iterator[dict]:
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    for label in rng.permutation(np.arange(count) % len(CLASSES)):
        colour, shape = CLASSES[label]
        radius = rng.uniform(*SHAPES_RADIUS) * image_size
        center = rng.uniform(radius, image_size - radius, size=2)
        canvas = np.full((image_size, image_size, 3), BACKGROUND, np.uint8)
        draw_shape(canvas, shape, colour, tuple(center), radius)
        yield {"image": PIL.Image.fromarray(canvas), "label": int(label)}
