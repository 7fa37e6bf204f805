"""The hybrid: a ResNet's stem and stages as the patch embedding of a ViT (Dosovitskiy et al. 2020, section 3.1;
timm's R26+ViT models).

Each cell of the ResNet's last feature map, projected to the Transformer's width by a 1x1 convolution, is a
token; a class token, learned positions and the same :class:`~bridge.nn.TransformerBlock` stack as the ViT's
follow. The lineage's two halves in one network: skip connections over feature maps, then ``x + f(x)`` over a
sequence. A ResNet classifier's weights (bridge's, e.g. one pretrained on shapes) load into the convolutional
half, and the Transformer half keeps its own initialisation.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from bridge.models.registry import register_model
from bridge.models.resnet import ResNet
from bridge.models.vit import VisionTransformer


class ConvEmbed(nn.Module):
    """A ResNet without its classifier, then a 1x1 projection: images (B, C, H, W) -> tokens (B, N, D)."""

    def __init__(self, backbone: ResNet, embed_dim: int, grid_size: tuple[int, int]) -> None:
        super().__init__()
        self.backbone = backbone
        self.proj = nn.Conv2d(backbone.num_features, embed_dim, kernel_size=1)
        self.grid_size, self.num_patches = grid_size, grid_size[0] * grid_size[1]

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.backbone.forward_features(x)).flatten(2).transpose(1, 2)


class ResNetViT(VisionTransformer):
    """``resnet`` are the ResNet's settings (as ``bridge.models.resnet.ResNet`` takes them); ``stride`` is how
    much it shrinks an image (a ViT of that patch size has the same grid of tokens)."""

    backbone_family: ClassVar[str] = "resnet"  # classifiers whose weights fit the convolutional half
    timm_key_rules: ClassVar[list[tuple[str, str]]] = []  # no timm twin

    def __init__(
        self,
        resnet: dict | None = None,
        img_size: int = 64,
        in_chans: int = 3,
        num_classes: int = 10,
        embed_dim: int = 48,
        depth: int = 4,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        skip: bool = True,
    ) -> None:
        settings = {"stem": "imagenet", "layers": (3, 3), "widths": (16, 32), **(resnet or {}), "in_chans": in_chans}
        backbone = ResNet(**settings)
        stride = (4 if isinstance(backbone.maxpool, nn.MaxPool2d) else 1) * 2 ** (len(backbone.stage_names) - 1)
        super().__init__(
            img_size, stride, in_chans, num_classes, embed_dim, depth, num_heads, mlp_ratio, qkv_bias,
            drop_rate, skip,
        )  # fmt: skip
        backbone.fc = nn.Identity()  # the ViT's head classifies; the ResNet's would only hold dead weights
        self.patch_embed = ConvEmbed(backbone, self.num_features, self.patch_embed.grid_size)

    def film_sites(self) -> list[str]:
        """After each ResNet stage and each Transformer block."""
        stages = [f"patch_embed.backbone.{name}" for name in self.patch_embed.backbone.stage_names]
        return stages + super().film_sites()

    def adapt_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A ResNet's weights (``conv1.``, ``layer1.`` ...) become the convolutional half's; the rest keeps ours."""
        if "conv1.weight" not in state:
            return super().adapt_state_dict(state)
        prefix = "patch_embed.backbone."
        backbone = {prefix + k: v for k, v in state.items() if not k.startswith("fc.")}
        return {**self.state_dict(), **backbone}


@register_model(params=186_474, input_size=(3, 64, 64))
def resnet_vit(**kwargs) -> ResNetViT:
    """The lineage's ResNet (two stages of 16 and 32 channels: 8x8 tokens of a 64x64 frame) under four blocks of
    width 48, the width of the lineage's small ViT."""
    return ResNetViT(**kwargs)
