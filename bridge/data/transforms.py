"""Image transforms (torchvision.transforms.v2) and the batch function ``Dataset.with_transform`` runs lazily."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.transforms import v2

from bridge.errors import ConfigError

# "cifar" is the ResNet paper's CIFAR recipe (He et al. 2015, sec. 4.2): pad 4 pixels with zeros,
# crop a random image_size window, flip horizontally half the time. "shift" is the same without the flip,
# for data a mirror changes (digits, text).
AUGMENTATIONS = ("none", "flip", "shift", "cifar")


def build_transform(
    image_size: int,
    in_chans: int,
    mean: float | Sequence[float] = 0.5,
    std: float | Sequence[float] = 0.5,
    augment: str = "none",
) -> v2.Compose:
    """PIL image -> float tensor (in_chans, image_size, image_size) normalised by ``mean``/``std``.

    The default 0.5/0.5 maps [0, 1] to [-1, 1] for models trained from scratch; pass ImageNet's
    statistics for weights pretrained on it. Augmentation runs after normalisation, so the "cifar"
    zero padding is zero in the normalised space, i.e. the mean pixel, as in the paper.
    """
    if augment not in AUGMENTATIONS:
        raise ConfigError(f"unknown augment {augment!r}; expected one of {', '.join(AUGMENTATIONS)}")
    if in_chans not in (1, 3):
        raise ConfigError(f"in_chans must be 1 (greyscale) or 3 (RGB), got {in_chans}")
    steps: list[v2.Transform] = [
        v2.ToImage(),
        # Shorter side to image_size, then the centre square: non-square images keep their aspect ratio.
        v2.Resize(image_size, antialias=True),
        v2.CenterCrop(image_size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(_per_channel(mean, in_chans, "mean"), _per_channel(std, in_chans, "std")),
    ]
    if augment in ("shift", "cifar"):
        steps.append(v2.RandomCrop(image_size, padding=4, fill=0))
    if augment in ("flip", "cifar"):
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


class BatchTransform:
    """What ``Dataset.with_transform`` calls: a batch of PIL images and labels -> {"image", "label"}.

    Channels are converted with PIL first (``L`` or ``RGB``), which handles every mode a dataset may
    hold (palette, RGBA, CMYK, greyscale) and turns grey digits into 3 channels when a model wants 3.
    """

    def __init__(self, image_column: str, label_column: str, in_chans: int, transform: v2.Compose) -> None:
        self.image_column, self.label_column = image_column, label_column
        self.mode = "L" if in_chans == 1 else "RGB"
        self.transform = transform

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        images = [self.transform(image.convert(self.mode)) for image in batch[self.image_column]]
        return {"image": images, "label": batch[self.label_column]}


def collate(rows: list[dict]) -> tuple[Tensor, Tensor]:
    """Rows from :class:`BatchTransform` -> ``(images (B, C, H, W) float32, labels (B,) int64)``."""
    return torch.stack([row["image"] for row in rows]), torch.tensor([row["label"] for row in rows])


def _per_channel(value: float | Sequence[float], in_chans: int, name: str) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * in_chans
    if len(value) != in_chans:
        raise ConfigError(f"{name} has {len(value)} values for {in_chans} channels; give one value or {in_chans}")
    return [float(v) for v in value]
