"""A minimal Vision Transformer (Dosovitskiy et al. 2020) in timm's layout.

Patches become tokens, a class token and learned positions are added, and a stack of
:class:`~bridge.nn.TransformerBlock` (``x + attn(norm(x))``, ``x + mlp(norm(x))``) does the rest: the
ResNet's skip connection on a sequence.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn as nn
from torch import Tensor

from bridge.errors import ConfigError
from bridge.models.base import EncoderOutput, ZooModel, check_sizes
from bridge.models.registry import register_model
from bridge.nn import TransformerBlock


def to_2tuple(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` patches, linearly projected (a strided conv), as tokens (B, N, D)."""

    def __init__(self, img_size: tuple[int, int], patch_size: tuple[int, int], in_chans: int, embed_dim: int) -> None:
        super().__init__()
        if img_size[0] % patch_size[0] or img_size[1] % patch_size[1]:
            raise ConfigError(f"ViT: img_size {img_size} must be a multiple of patch_size {patch_size}")
        self.grid_size = (img_size[0] // patch_size[0], img_size[1] // patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(ZooModel):
    head_name = "head"
    num_prefix_tokens = 1  # the class token
    # timm's block has norm1/attn/norm2/mlp; ours groups each norm with its sublayer inside a Residual.
    timm_key_rules: ClassVar[list[tuple[str, str]]] = [
        ("blocks.{}.attn.branch.norm.", "blocks.{}.norm1."),
        ("blocks.{}.attn.branch.attn.", "blocks.{}.attn."),
        ("blocks.{}.mlp.branch.norm.", "blocks.{}.norm2."),
        ("blocks.{}.mlp.branch.mlp.", "blocks.{}.mlp."),
    ]

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        skip: bool = True,
    ) -> None:
        super().__init__()
        check_sizes("ViT", 1, img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim)
        check_sizes("ViT", 1, num_heads=num_heads)
        check_sizes("ViT", 0, depth=depth, num_classes=num_classes)
        if embed_dim % num_heads:
            raise ConfigError(f"ViT: embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        if not 0 <= drop_rate < 1:
            raise ConfigError(f"ViT: drop_rate must be in [0, 1), got {drop_rate}")
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, embed_dim
        self.fixed_input_size = to_2tuple(img_size)
        self.patch_embed = PatchEmbed(self.fixed_input_size, to_2tuple(patch_size), in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix_tokens + self.patch_embed.num_patches, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.Sequential(
            *[TransformerBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, skip) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, 1 + N, D): the class token, then the patch tokens."""
        self.check_input(x)
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(x + self.pos_embed)
        return self.norm(self.blocks(x))

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        x = features[:, 0]
        return x if pre_logits else self.head(x)

    def encode(self, x: Tensor) -> EncoderOutput:
        features = self.forward_features(x)
        return EncoderOutput(features[:, self.num_prefix_tokens :], features[:, 0])

    def film_sites(self) -> list[str]:
        return [f"blocks.{i}" for i in range(len(self.blocks))]

    @classmethod
    def input_kwargs(cls, input_size: tuple[int, int, int]) -> dict:
        """Built for the images' size, with 8x8 patch tokens (the patches shrink with the image)."""
        _, h, w = input_size
        return {"img_size": h if h == w else (h, w), "patch_size": max(1, min(h, w) // 8)}

    def adapt_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weights trained at another resolution: timm's own resampling, so results match ``timm.create_model``."""
        from timm.layers import resample_abs_pos_embed, resample_patch_embed

        state = dict(state)
        weight = state.get("patch_embed.proj.weight")
        pos = state.get("pos_embed")
        grid = list(self.patch_embed.grid_size)
        if pos is not None:
            # The checkpoint's grid, as timm infers it: the twins' 224-pixel input over the checkpoint's patch
            # size, when that accounts for every token (else a square grid is assumed). A 28x7 grid has the
            # same 196 tokens as 14x14 and must still be resampled.
            old = None
            if weight is not None and weight.ndim == 4:
                candidate = [224 // weight.shape[-2], 224 // weight.shape[-1]]
                if candidate[0] * candidate[1] == pos.shape[1] - self.num_prefix_tokens:
                    old = candidate
            if pos.shape != self.pos_embed.shape or (old is not None and old != grid):
                state["pos_embed"] = resample_abs_pos_embed(
                    pos, new_size=grid, old_size=old, num_prefix_tokens=self.num_prefix_tokens
                )
        kernel = self.patch_embed.proj.weight.shape[-2:]
        if weight is not None and weight.ndim == 4 and weight.shape[-2:] != kernel:
            state["patch_embed.proj.weight"] = resample_patch_embed(weight, list(kernel))
        return state


def _vit(defaults: dict, kwargs: dict) -> VisionTransformer:
    return VisionTransformer(**{**defaults, **kwargs})


_IN = (3, 224, 224)


@register_model(params=5_717_416, input_size=_IN, twin="timm/vit_tiny_patch16_224")
def vit_tiny_patch16_224(**kwargs) -> VisionTransformer:
    return _vit(dict(patch_size=16, embed_dim=192, depth=12, num_heads=3), kwargs)


@register_model(params=22_050_664, input_size=_IN, twin="timm/vit_small_patch16_224")
def vit_small_patch16_224(**kwargs) -> VisionTransformer:
    return _vit(dict(patch_size=16, embed_dim=384, depth=12, num_heads=6), kwargs)


@register_model(params=86_567_656, input_size=_IN, twin="timm/vit_base_patch16_224")
def vit_base_patch16_224(**kwargs) -> VisionTransformer:
    return _vit(dict(patch_size=16, embed_dim=768, depth=12, num_heads=12), kwargs)
