"""ImageDataModule: any image source (see :mod:`bridge.data.sources`) served as ``(images, labels)`` batches."""

from __future__ import annotations

import os
from collections.abc import Sequence

import PIL.Image
import torch
from datasets import Dataset
from lightning import LightningDataModule
from torch.utils.data import DataLoader

from bridge.data.generated import DIGITS_SIZE, SHAPES_PER_SPLIT, SHAPES_SIZE
from bridge.data.sources import ImageSplits, label_range, load_source
from bridge.data.transforms import AUGMENTATIONS, BatchTransform, build_transform, collate
from bridge.errors import ConfigError

_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


class ImageDataModule(LightningDataModule):
    """Batches ``(images (B, C, H, W) float32, labels (B,) int64)`` from ``source``.

    Args:
        source: ``digits``, ``shapes``, ``hf:<hub id or local path>`` or ``imagefolder:<dir>``.
        image_size: side of the square images served; ``None``: the source's own (digits 32, shapes 64,
            otherwise the shorter side of the first training image). ``shapes`` are drawn at this size.
        in_chans: 1 or 3; ``None``: the source's own (1 for greyscale images).
        augment: ``none``, ``flip`` or ``cifar`` (see :mod:`bridge.data.transforms`); training split only.
        mean, std: normalisation, one value for all channels or one per channel.
        num_classes: when given, labels must lie in ``0..num_classes-1`` (checked in ``setup``).
        image_column, label_column: name them when the automatic detection picks the wrong ones.
        val_fraction: share of train carved off, seeded, when the source has no validation split.
        seed: draws ``shapes`` and carves validation; the digits split is fixed.
        shapes_per_split: ``shapes`` images in (train, validation, test).
        cache_dir: the datasets cache; ``None``: ``$HF_DATASETS_CACHE`` or datasets' default.
    """

    def __init__(
        self,
        source: str = "digits",
        image_size: int | None = None,
        in_chans: int | None = None,
        batch_size: int = 128,
        num_workers: int = 0,
        augment: str = "none",
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.5,
        num_classes: int | None = None,
        image_column: str | None = None,
        label_column: str | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        shapes_per_split: tuple[int, int, int] = SHAPES_PER_SPLIT,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        # Fail at construction, not minutes later in setup or in the first batch.
        if augment not in AUGMENTATIONS:
            raise ConfigError(f"unknown augment {augment!r}; expected one of {', '.join(AUGMENTATIONS)}")
        for arg, value, minimum in (("image_size", image_size, 1), ("batch_size", batch_size, 1),
                                    ("num_workers", num_workers, 0)):  # fmt: skip
            if value is not None and value < minimum:
                raise ConfigError(f"{arg} must be {minimum} or more, got {value}; set data.init_args.{arg}")
        if in_chans not in (None, 1, 3):
            raise ConfigError(f"in_chans must be 1 (greyscale) or 3 (RGB), got {in_chans}; set data.init_args.in_chans")
        if not 0 <= val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}; set data.init_args.val_fraction")
        # num_classes and in_chans are logged by the model; the same key twice with other values stops Lightning.
        self.save_hyperparameters(ignore=["num_classes", "in_chans"])
        self.source, self.batch_size, self.num_workers = source, batch_size, num_workers
        self.augment, self.mean, self.std, self.expected_classes = augment, mean, std, num_classes
        self._image_size, self._in_chans = image_size, in_chans
        self._source_kwargs = dict(
            cache_dir=cache_dir,
            seed=seed,
            val_fraction=val_fraction,
            image_column=image_column,
            label_column=label_column,
            shapes_size=image_size or SHAPES_SIZE,
            shapes_per_split=tuple(shapes_per_split),
        )
        self._splits: ImageSplits | None = None
        self._datasets: dict[str, Dataset] = {}

    def prepare_data(self) -> None:
        """Build and cache the dataset; Lightning calls this on one process per node before ``setup``."""
        self._load()

    def setup(self, stage: str | None = None) -> None:
        splits = self._load()
        self._check_labels(splits)
        size, chans = self.image_size, self.in_chans
        plain = build_transform(size, chans, self.mean, self.std)
        train = build_transform(size, chans, self.mean, self.std, self.augment)
        columns = [splits.image_column, splits.label_column]
        for name, split, transform in (
            ("train", splits.train, train),
            ("validation", splits.validation, plain),
            ("test", splits.test, plain),
        ):
            batch_transform = BatchTransform(splits.image_column, splits.label_column, chans, transform)
            self._datasets[name] = split.with_transform(batch_transform, columns=columns)

    @property
    def class_names(self) -> list[str]:
        return self._load().class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_chans(self) -> int:
        if self._in_chans is None:
            self._in_chans = 1 if self._first_image().mode in _GREY_MODES else 3
        return self._in_chans

    @property
    def image_size(self) -> int:
        if self._image_size is None:
            if self.source == "digits":
                self._image_size = DIGITS_SIZE
            elif self.source == "shapes":
                self._image_size = SHAPES_SIZE
            else:
                self._image_size = min(self._first_image().size)
        return self._image_size

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        if split not in self._datasets:
            raise RuntimeError(f"call setup() before asking for the {split} dataloader")
        # No sampler here: under DDP Lightning swaps in a DistributedSampler (shuffling as asked).
        return DataLoader(
            self._datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=collate,
        )

    def _load(self) -> ImageSplits:
        """The source's splits, built or loaded once per process; properties need them before ``setup``."""
        if self._splits is None:
            self._splits = load_source(self.source, **self._source_kwargs)
        return self._splits

    def _first_image(self) -> PIL.Image.Image:
        splits = self._load()
        return splits.train[0][splits.image_column]

    def _check_labels(self, splits: ImageSplits) -> None:
        limit = self.expected_classes if self.expected_classes is not None else len(splits.class_names)
        for name, split in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
            low, high = label_range(split, splits.label_column)
            if low < 0 or high >= limit:
                raise ConfigError(
                    f"{self.source}: the {name} split has labels {low}..{high}, outside 0..{limit - 1} "
                    f"(num_classes={limit}); pass the data's number of classes as num_classes and build the "
                    f"model for it, or fix the {splits.label_column!r} column"
                )
