"""VGG (Simonyan & Zisserman 2014) in torchvision's layout: only 3x3 convolutions, stacked deep.

Two stacked 3x3 convolutions see a 5x5 window with 2*9*C^2 weights instead of 25*C^2, and add a
non-linearity in between. Most parameters sit in the first FC layer (25088 x 4096).
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from bridge.errors import ConfigError
from bridge.models.base import ZooModel, check_sizes
from bridge.models.registry import register_model

# Output channels of each 3x3 convolution, "M" a 2x2 max pool; one row per depth (conv + 3 FC layers).
CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def conv3x3_stack(cfg: list[int | str], in_chans: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_chans, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_chans = v
    return nn.Sequential(*layers)


class VGG(ZooModel):
    head_name = "classifier.6"
    min_input_size = 32  # five 2x2 max pools

    def __init__(
        self,
        depth: int = 16,
        batch_norm: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if depth not in CONFIGS:
            raise ConfigError(f"VGG: depth must be one of {sorted(CONFIGS)}, got {depth!r}")
        check_sizes("VGG", 1, in_chans=in_chans)
        check_sizes("VGG", 0, num_classes=num_classes)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 512
        self.features = conv3x3_stack(CONFIGS[depth], in_chans, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        self.init_weights()

    def init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.features(x)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.avgpool(features).flatten(1)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


_IN = (3, 224, 224)


@register_model(params=132_863_336, input_size=_IN, twin="torchvision/vgg11")
def vgg11(**kwargs) -> VGG:
    return VGG(depth=11, **kwargs)


@register_model(params=133_047_848, input_size=_IN, twin="torchvision/vgg13")
def vgg13(**kwargs) -> VGG:
    return VGG(depth=13, **kwargs)


@register_model(params=138_357_544, input_size=_IN, twin="torchvision/vgg16")
def vgg16(**kwargs) -> VGG:
    return VGG(depth=16, **kwargs)


@register_model(params=143_667_240, input_size=_IN, twin="torchvision/vgg19")
def vgg19(**kwargs) -> VGG:
    return VGG(depth=19, **kwargs)


@register_model(params=132_868_840, input_size=_IN, twin="torchvision/vgg11_bn")
def vgg11_bn(**kwargs) -> VGG:
    return VGG(depth=11, batch_norm=True, **kwargs)


@register_model(params=133_053_736, input_size=_IN, twin="torchvision/vgg13_bn")
def vgg13_bn(**kwargs) -> VGG:
    return VGG(depth=13, batch_norm=True, **kwargs)


@register_model(params=138_365_992, input_size=_IN, twin="torchvision/vgg16_bn")
def vgg16_bn(**kwargs) -> VGG:
    return VGG(depth=16, batch_norm=True, **kwargs)


@register_model(params=143_678_248, input_size=_IN, twin="torchvision/vgg19_bn")
def vgg19_bn(**kwargs) -> VGG:
    return VGG(depth=19, batch_norm=True, **kwargs)
