"""FiLM (Perez et al. 2018): features scaled and shifted per channel by a conditioning vector."""

from __future__ import annotations

from torch import Tensor, nn


class FiLM(nn.Module):
    """``x * (1 + gamma(c)) + beta(c)``, one ``gamma`` and ``beta`` per channel of ``x``.

    ``gamma`` and ``beta`` come from one Linear that starts at zero, so a freshly built FiLM is the
    identity (RT-1): conditioning can be added inside a pretrained network without disturbing it at step 0.
    ``x`` is a feature map (B, dim, H, W) or tokens (B, N, dim); ``cond`` is (B, cond_dim).
    """

    def __init__(self, cond_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gamma, beta = self.proj(cond).chunk(2, dim=-1)
        b, c = gamma.shape
        shape = (b, c, 1, 1) if x.ndim == 4 else (b,) + (1,) * (x.ndim - 2) + (c,)
        return x * (1 + gamma.view(shape)) + beta.view(shape)
