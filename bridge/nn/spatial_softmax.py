"""Spatial softmax (Levine et al. 2016): a grid of features read out as where its keypoints are, not how strong.

The readout of the visuomotor policies of robomimic and of Diffusion Policy (LeRobot's ``SpatialSoftmax``, which
the project cannot import at run time: LeRobot pins an older torch). A reaching policy needs positions from a
frame, the agent's and the named object's; a mean over the grid averages them away, and a grid of tokens makes
the trunk read every cell.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SpatialSoftmax(nn.Module):
    """Tokens (B, H * W, C) of an (H, W) grid -> ``num_keypoints`` expected positions (B, K, 2), x and y in [-1, 1].

    A 1x1 projection makes K maps of the C features; each map's softmax over the grid weighs the cells' positions.
    """

    def __init__(self, grid: tuple[int, int], channels: int, num_keypoints: int = 32) -> None:
        super().__init__()
        self.maps = nn.Linear(channels, num_keypoints)
        h, w = grid
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("positions", torch.stack([xs.flatten(), ys.flatten()], dim=-1), persistent=False)

    def forward(self, tokens: Tensor) -> Tensor:
        weights = self.maps(tokens).softmax(dim=1)  # (B, N, K): each keypoint's distribution over the N cells
        return weights.transpose(1, 2) @ self.positions
