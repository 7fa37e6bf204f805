"""Actions as the policy sees them: min-max normalisation from data stats, 256-bin tokens, and draws from logits."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MinMaxNormalizer(nn.Module):
    """Map values to [-1, 1] with the data's per-dimension min and max (LeRobot's ``MIN_MAX`` mode).

    The statistics are buffers, so they travel with every checkpoint and inference un-normalises exactly
    as training normalised. Until :meth:`set_stats` is called it is the identity on [-1, 1].
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("low", -torch.ones(dim))
        self.register_buffer("high", torch.ones(dim))

    @torch.no_grad()
    def set_stats(self, low, high) -> None:
        low = torch.as_tensor(low, dtype=torch.float32).reshape(self.low.shape)
        high = torch.as_tensor(high, dtype=torch.float32).reshape(self.high.shape)
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()) or (high < low).any():
            raise ValueError(f"invalid normalisation stats: min {low.tolist()}, max {high.tolist()}")
        self.low.copy_(low)
        self.high.copy_(high)

    def _span(self) -> Tensor:
        return (self.high - self.low).clamp_min(1e-6)  # a constant dimension must not divide by zero

    def normalize(self, x: Tensor) -> Tensor:
        return 2 * (x - self.low) / self._span() - 1

    def unnormalize(self, x: Tensor) -> Tensor:
        return (x + 1) / 2 * self._span() + self.low


class ActionBins:
    """RT-1 / OpenVLA action tokens: ``num_bins`` uniform bins per dimension over normalised [-1, 1]."""

    def __init__(self, num_bins: int = 256) -> None:
        if num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {num_bins}")
        self.num_bins = num_bins

    def encode(self, actions: Tensor) -> Tensor:
        """Normalised actions -> bin indices (long), values outside [-1, 1] land in the end bins."""
        scaled = (actions.clamp(-1, 1) + 1) / 2 * self.num_bins
        return scaled.long().clamp_max(self.num_bins - 1)

    def decode(self, bins: Tensor) -> Tensor:
        """Bin indices -> the bins' centres in [-1, 1]."""
        return (bins.float() + 0.5) / self.num_bins * 2 - 1

    def soft_targets(self, bins: Tensor, sigma: float) -> Tensor:
        """Cross-entropy targets (..., num_bins): a Gaussian of ``sigma`` bins around each bin (HL-Gauss,
        Farebrother et al. 2024), so a near miss costs less than a far one; ``sigma=0`` is one-hot (RT-1)."""
        if sigma <= 0:
            return torch.nn.functional.one_hot(bins, self.num_bins).float()
        centres = torch.arange(self.num_bins, device=bins.device, dtype=torch.float32)
        return (-0.5 * ((centres - bins[..., None]) / sigma) ** 2).softmax(dim=-1)


def draw(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One index per row of ``logits`` (..., n), drawn from their softmax. torch.distributions.Categorical would
    do it too, but takes no generator, and seeded draws make an evaluation repeatable."""
    probs = logits.softmax(-1)
    return torch.multinomial(probs.flatten(0, -2), 1, generator=generator).view(probs.shape[:-1])
