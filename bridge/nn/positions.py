"""Fixed position embeddings: where a token sits on a grid, in a form every trunk width can carry."""

from __future__ import annotations

import torch
from torch import Tensor


def sincos_2d(height: int, width: int, dim: int) -> Tensor:
    """Fixed 2-D sin-cos positions (MAE): half the channels encode the row, half the column. (H*W, dim)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    parts = []
    for pos in (rows.flatten(), cols.flatten()):
        angle = pos.float()[:, None] * omega[None]
        parts += [angle.sin(), angle.cos()]
    return torch.cat(parts, dim=1)
