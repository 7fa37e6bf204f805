"""From a source string to train/validation/test ``datasets.Dataset`` splits with known columns and classes.

Sources: ``digits``, ``shapes``, ``hf:<hub id or local path>``, ``imagefolder:<dir>``. A source without a
validation split gets one carved off train (``val_fraction``, seeded); without a test split, the
validation split doubles as test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value, load_dataset, load_from_disk

from bridge.data.cache import resolve_cache_dir
from bridge.data.generated import SHAPES_PER_SPLIT, SHAPES_SIZE, build_digits, build_shapes
from bridge.errors import ConfigError, CorruptFileError, MissingFileError

SOURCE_FORMS = ("digits", "shapes", "hf:<hub id or local path>", "imagefolder:<dir>")
LABEL_COLUMN_NAMES = ("label", "labels", "fine_label")
_SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "valid", "val", "dev"), "test": ("test",)}


@dataclass(frozen=True)
class ImageSplits:
    """The three splits of a source (``test`` may be the ``validation`` object) and what their columns mean."""

    train: Dataset
    validation: Dataset
    test: Dataset
    image_column: str
    label_column: str
    class_names: list[str]


def load_source(
    source: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    image_column: str | None = None,
    label_column: str | None = None,
    shapes_size: int = SHAPES_SIZE,
    shapes_per_split: tuple[int, int, int] = SHAPES_PER_SPLIT,
) -> ImageSplits:
    """Build or load ``source`` (see the module docstring); ``seed`` draws ``shapes`` and carves validation."""
    kind, _, target = source.partition(":")
    if source == "digits":
        data: Dataset | DatasetDict = build_digits(cache_dir)
    elif source == "shapes":
        data = build_shapes(shapes_size, shapes_per_split, seed, cache_dir)
    elif kind == "hf" and target:
        data = _load_hf(target, cache_dir)
    elif kind == "imagefolder" and target:
        data = _load_imagefolder(target, cache_dir)
    else:
        raise ConfigError(f"unknown source {source!r}; expected one of: {', '.join(SOURCE_FORMS)}")
    splits = _standard_splits(data, seed, val_fraction)
    image_column, label_column = find_columns(splits["train"].features, image_column, label_column)
    return ImageSplits(
        **splits, image_column=image_column, label_column=label_column, class_names=_class_names(splits, label_column)
    )


def find_columns(
    features: Features, image_column: str | None = None, label_column: str | None = None
) -> tuple[str, str]:
    """The image and label columns: as named, else the first ``Image`` feature and the first ``ClassLabel``
    (or a column named label, labels or fine_label). Raises a ValueError listing the columns there are."""
    listing = ", ".join(f"{name} ({_describe(feature)})" for name, feature in features.items())
    if image_column is None:
        image_column = next((name for name, f in features.items() if isinstance(f, Image)), None)
        if image_column is None:
            raise ConfigError(f"no image column (a datasets.Image feature) among: {listing}; pass image_column=")
    elif not isinstance(features.get(image_column), Image):
        raise ConfigError(f"image_column {image_column!r} is not a datasets.Image column; columns: {listing}")
    if label_column is None:
        label_column = next((name for name, f in features.items() if isinstance(f, ClassLabel)), None)
        label_column = label_column or next((name for name in LABEL_COLUMN_NAMES if name in features), None)
        if label_column is None:
            raise ConfigError(
                f"no label column (a ClassLabel feature or a column named {', '.join(LABEL_COLUMN_NAMES)}) "
                f"among: {listing}; pass label_column="
            )
    elif label_column not in features:
        raise ConfigError(f"label_column {label_column!r} is not a column; columns: {listing}")
    label = features[label_column]
    if not (isinstance(label, ClassLabel) or (isinstance(label, Value) and "int" in label.dtype)):
        raise ConfigError(f"label column {label_column!r} holds {_describe(label)}; expected ClassLabel or integers")
    return image_column, label_column


def label_range(dataset: Dataset, label_column: str) -> tuple[int, int]:
    """(min, max) label of a split, read from the Arrow column alone (no image is decoded)."""
    labels = dataset.select_columns([label_column]).with_format("arrow")[:][label_column]
    extremes = pc.min_max(labels)
    return extremes["min"].as_py(), extremes["max"].as_py()


def _load_hf(target: str, cache_dir: str | os.PathLike | None) -> Dataset | DatasetDict:
    path = Path(target).expanduser()
    if path.exists():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():  # written by save_to_disk
            return load_from_disk(str(path))
        return load_dataset(str(path), cache_dir=str(resolve_cache_dir(cache_dir)))
    if target.startswith(("/", ".", "~")):
        raise MissingFileError(
            f"hf:{target}: no such path; expected a folder written by Dataset.save_to_disk or a hub id like owner/name"
        )
    try:
        return load_dataset(target, cache_dir=str(resolve_cache_dir(cache_dir)))
    except (ConnectionError, FileNotFoundError) as err:
        raise MissingFileError(
            f"hf:{target}: datasets.load_dataset could not find it ({err}). A hub id needs the network or a copy "
            f"in the local HF cache ({resolve_cache_dir(cache_dir)}); for data on disk pass hf:<path to a folder "
            "written by save_to_disk>"
        ) from err


def _load_imagefolder(target: str, cache_dir: str | os.PathLike | None) -> DatasetDict:
    path = Path(target).expanduser()
    if not path.is_dir():
        raise MissingFileError(
            f"imagefolder:{target}: {path} is not a directory; expected a folder with one subfolder of images "
            f"per class (e.g. {path}/cat/0001.png), optionally inside train/, validation/ and test/ folders"
        )
    unreadable = unreadable_images(path)
    if unreadable:
        more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        shown = ", ".join(map(str, unreadable[:5])) + more
        raise CorruptFileError(
            f"imagefolder:{target}: {len(unreadable)} file(s) named as images cannot be read as images: {shown}; "
            "replace or delete them, then run again"
        )
    return load_dataset("imagefolder", data_dir=str(path), cache_dir=str(resolve_cache_dir(cache_dir)))


def unreadable_images(folder: Path) -> list[Path]:
    """Files under ``folder`` with an image extension that PIL cannot read: found before any training step.

    ``verify()`` reads headers and chunk checksums, not pixels, so a folder of thousands of images takes seconds.
    """
    extensions = PIL.Image.registered_extensions()
    bad = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in extensions or not path.is_file():
            continue
        try:
            with PIL.Image.open(path) as image:
                image.verify()
        except Exception:  # PIL raises many kinds (UnidentifiedImageError, SyntaxError, OSError...)
            bad.append(path)
    return bad


def _standard_splits(data: Dataset | DatasetDict, seed: int, val_fraction: float) -> dict[str, Dataset]:
    if isinstance(data, Dataset):
        data = DatasetDict({"train": data})
    splits = {name: next((data[a] for a in aliases if a in data), None) for name, aliases in _SPLIT_NAMES.items()}
    if splits["train"] is None:
        raise ConfigError(f"the source has no train split; its splits are: {', '.join(data)}")
    if splits["validation"] is None:
        if not 0 < val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1) to carve validation off train, got {val_fraction}")
        train = splits["train"]
        order = np.random.default_rng(seed).permutation(len(train))
        n_val = max(1, round(val_fraction * len(train)))
        # Indices mappings kept in memory: nothing is written next to a user's saved dataset.
        splits["validation"] = train.select(order[:n_val], keep_in_memory=True)
        splits["train"] = train.select(order[n_val:], keep_in_memory=True)
    if splits["test"] is None:
        splits["test"] = splits["validation"]
    return splits


def _class_names(splits: dict[str, Dataset], label_column: str) -> list[str]:
    feature = splits["train"].features[label_column]
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    top = max(label_range(split, label_column)[1] for split in splits.values())
    return [str(i) for i in range(top + 1)]


def _describe(feature: object) -> str:
    return feature.dtype if isinstance(feature, Value) else type(feature).__name__
