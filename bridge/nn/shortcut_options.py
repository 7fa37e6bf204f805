"""Shortcut paths for residual blocks whose input and output shapes differ (He et al. 2015, 3.3).

* option A: parameter-free, subsample with the stride and zero-pad the new channels;
* option B: a 1x1 convolution + BatchNorm projection only where the shape changes, identity elsewhere;
* option C: the projection on every block.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

SHORTCUT_OPTIONS = ("A", "B", "C")


class PadShortcut(nn.Module):
    """Option A: ``x[:, :, ::stride, ::stride]`` with ``out_chs - in_chs`` zero channels appended."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        if out_chs < in_chs:
            raise ValueError(f"option A can only widen: in_chs={in_chs} > out_chs={out_chs}")
        self.stride = stride
        self.pad = out_chs - in_chs

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad_channels={self.pad}"


def projection(in_chs: int, out_chs: int, stride: int = 1) -> nn.Sequential:
    """Options B and C: 1x1 convolution (with the block's stride) and BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_chs),
    )


def make_shortcut(option: str, in_chs: int, out_chs: int, stride: int, skip: bool = True) -> nn.Module | None:
    """The shortcut of one block, or ``None`` for the identity.

    A plain block (``skip=False``) owns no projection weights; where its shape changes it gets the
    parameter-free option A, so flipping ``skip`` on later still yields a valid residual network.
    """
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"shortcut must be one of {SHORTCUT_OPTIONS}, got {option!r}")
    reshapes = stride != 1 or in_chs != out_chs
    if skip and (option == "C" or (option == "B" and reshapes)):
        return projection(in_chs, out_chs, stride)
    if reshapes:
        return PadShortcut(in_chs, out_chs, stride)
    return None
