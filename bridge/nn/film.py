"""FiLM (Perez et al. 2018): features scaled and shifted per channel by a conditioning vector."""

from __future__ import annotations

from torch import Tensor, nn


class FiLM(nn.Module):
    """``x * (1 + gamma(c)) + beta(c)`` over the last (channel) dimension of ``x``.

    ``gamma`` and ``beta`` come from one Linear that starts at zero, so a freshly built FiLM is the
    identity (RT-1): conditioning can be added to a pretrained network without disturbing it at step 0.
    ``x`` is (B, ..., dim), e.g. tokens (B, N, dim); ``cond`` is (B, cond_dim).
    """

    def __init__(self, cond_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gamma, beta = self.proj(cond).chunk(2, dim=-1)
        shape = (cond.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)  # broadcast over the middle dims
        return x * (1 + gamma.reshape(shape)) + beta.reshape(shape)
