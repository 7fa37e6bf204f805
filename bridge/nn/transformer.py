"""The pre-norm Transformer block: two residuals, ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from bridge.nn.attention import Attention
from bridge.nn.mlp import Mlp
from bridge.nn.residual import Residual


def pre_norm(dim: int, name: str, sublayer: nn.Module) -> nn.Sequential:
    """``norm`` then ``sublayer``, the branch of one half of a Transformer block."""
    return nn.Sequential(OrderedDict(norm=nn.LayerNorm(dim, eps=1e-6), **{name: sublayer}))


class TransformerBlock(nn.Sequential):
    """ViT / GPT-2 style block; the same :class:`Residual` as a ResNet block, on tokens (B, N, D)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        skip: bool = True,
    ) -> None:
        super().__init__(
            OrderedDict(
                attn=Residual(pre_norm(dim, "attn", Attention(dim, num_heads, qkv_bias, attn_drop=drop)), skip=skip),
                mlp=Residual(pre_norm(dim, "mlp", Mlp(dim, int(dim * mlp_ratio), drop=drop)), skip=skip),
            )
        )
