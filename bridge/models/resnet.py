"""ResNet (He et al. 2015) and its plain twins: the same network with ``skip=False``.

One class covers the ImageNet nets (7x7 stem, 64-128-256-512 widths, basic or bottleneck blocks) and the
CIFAR nets of the paper's section 4.2 (3x3 stem, 16-32-64 widths, 6n+2 layers). Parameter names follow
timm/torchvision except for the level :class:`~bridge.nn.Residual` adds (``branch``/``shortcut``), which
``ResNet.timm_key_rules`` maps.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

import torch.nn as nn
from torch import Tensor

from bridge.errors import ConfigError
from bridge.models.base import ZooModel, check_sizes
from bridge.models.registry import register_model
from bridge.nn import Residual, make_shortcut


def conv3x3(in_chs: int, out_chs: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_chs: int, out_chs: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, kernel_size=1, stride=stride, bias=False)


class BasicBlock(Residual):
    """relu(shortcut(x) + bn(conv3x3(relu(bn(conv3x3(x))))))."""

    expansion = 1

    def __init__(self, in_chs: int, width: int, stride: int = 1, shortcut: str = "B", skip: bool = True) -> None:
        branch = nn.Sequential(
            OrderedDict(
                conv1=conv3x3(in_chs, width, stride),
                bn1=nn.BatchNorm2d(width),
                act1=nn.ReLU(inplace=True),
                conv2=conv3x3(width, width),
                bn2=nn.BatchNorm2d(width),
            )
        )
        super().__init__(branch, make_shortcut(shortcut, in_chs, width, stride, skip), nn.ReLU(inplace=True), skip)


class Bottleneck(Residual):
    """1x1 reduce -> 3x3 (carries the stride, "ResNet v1.5" as in timm/torchvision) -> 1x1 expand x4."""

    expansion = 4

    def __init__(self, in_chs: int, width: int, stride: int = 1, shortcut: str = "B", skip: bool = True) -> None:
        out_chs = width * self.expansion
        branch = nn.Sequential(
            OrderedDict(
                conv1=conv1x1(in_chs, width),
                bn1=nn.BatchNorm2d(width),
                act1=nn.ReLU(inplace=True),
                conv2=conv3x3(width, width, stride),
                bn2=nn.BatchNorm2d(width),
                act2=nn.ReLU(inplace=True),
                conv3=conv1x1(width, out_chs),
                bn3=nn.BatchNorm2d(out_chs),
            )
        )
        super().__init__(branch, make_shortcut(shortcut, in_chs, out_chs, stride, skip), nn.ReLU(inplace=True), skip)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(ZooModel):
    head_name = "fc"
    timm_key_rules: ClassVar[list[tuple[str, str]]] = [
        ("layer{}.{}.branch.", "layer{}.{}."),
        ("layer{}.{}.shortcut.", "layer{}.{}.downsample."),
    ]

    def __init__(
        self,
        layers: tuple[int, ...] = (2, 2, 2, 2),
        block: str = "basic",
        widths: tuple[int, ...] = (64, 128, 256, 512),
        stem: str = "imagenet",
        shortcut: str = "B",
        skip: bool = True,
        num_classes: int = 1000,
        in_chans: int = 3,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        check_sizes("ResNet", 1, widths=widths, in_chans=in_chans)
        check_sizes("ResNet", 0, layers=layers, num_classes=num_classes)
        if block not in BLOCKS:
            raise ConfigError(f"ResNet: block must be one of {sorted(BLOCKS)}, got {block!r}")
        if stem not in ("imagenet", "cifar"):
            raise ConfigError(f"ResNet: stem must be 'imagenet' or 'cifar', got {stem!r}")
        if len(layers) != len(widths):
            raise ConfigError(
                f"ResNet: layers {tuple(layers)} and widths {tuple(widths)} must have the same length (one per stage)"
            )
        block_cls = BLOCKS[block]
        self.num_classes, self.in_chans = num_classes, in_chans

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = conv3x3(in_chans, widths[0])
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.act1 = nn.ReLU(inplace=True)

        in_chs = widths[0]
        self.stage_names = []
        for i, (num_blocks, width) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(num_blocks):
                blocks.append(block_cls(in_chs, width, stride if j == 0 else 1, shortcut, skip))
                in_chs = width * block_cls.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.stage_names.append(f"layer{i + 1}")
        self.num_features = in_chs
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_chs, num_classes)
        self.init_weights(zero_init_last)

    def init_weights(self, zero_init_last: bool = False) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:  # each block starts as the identity (Goyal et al. 2017); only sound with skips
            for m in self.modules():
                if isinstance(m, Residual):
                    nn.init.zeros_(m.branch[-1].weight)

    def forward_features(self, x: Tensor) -> Tensor:
        self.check_input(x)
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.global_pool(features).flatten(1)
        return x if pre_logits else self.fc(x)

    def film_sites(self) -> list[str]:
        """After each stage: the features themselves become conditioned on the instruction."""
        return list(self.stage_names)


def _imagenet(layers: tuple[int, ...], block: str, kwargs: dict) -> ResNet:
    return ResNet(**{"layers": layers, "block": block, **kwargs})


def _cifar(depth: int, kwargs: dict) -> ResNet:
    n = (depth - 2) // 6  # three stages of n blocks of two layers, plus the stem and the classifier
    defaults = dict(layers=(n, n, n), widths=(16, 32, 64), stem="cifar", shortcut="A", num_classes=10)
    return ResNet(**{**defaults, **kwargs})


_IN, _CIFAR = (3, 224, 224), (3, 32, 32)


@register_model(params=11_689_512, input_size=_IN, twin="timm/resnet18")
def resnet18(**kwargs) -> ResNet:
    return _imagenet((2, 2, 2, 2), "basic", kwargs)


@register_model(params=21_797_672, input_size=_IN, twin="timm/resnet34")
def resnet34(**kwargs) -> ResNet:
    return _imagenet((3, 4, 6, 3), "basic", kwargs)


@register_model(params=25_557_032, input_size=_IN, twin="timm/resnet50")
def resnet50(**kwargs) -> ResNet:
    return _imagenet((3, 4, 6, 3), "bottleneck", kwargs)


@register_model(params=44_549_160, input_size=_IN, twin="timm/resnet101")
def resnet101(**kwargs) -> ResNet:
    return _imagenet((3, 4, 23, 3), "bottleneck", kwargs)


@register_model(params=60_192_808, input_size=_IN, twin="timm/resnet152")
def resnet152(**kwargs) -> ResNet:
    return _imagenet((3, 8, 36, 3), "bottleneck", kwargs)


@register_model(params=11_515_688, input_size=_IN)
def plain18(**kwargs) -> ResNet:
    return _imagenet((2, 2, 2, 2), "basic", {"skip": False, **kwargs})


@register_model(params=21_623_848, input_size=_IN)
def plain34(**kwargs) -> ResNet:
    return _imagenet((3, 4, 6, 3), "basic", {"skip": False, **kwargs})


@register_model(params=269_722, input_size=_CIFAR)
def resnet20(**kwargs) -> ResNet:
    return _cifar(20, kwargs)


@register_model(params=464_154, input_size=_CIFAR)
def resnet32(**kwargs) -> ResNet:
    return _cifar(32, kwargs)


@register_model(params=658_586, input_size=_CIFAR)
def resnet44(**kwargs) -> ResNet:
    return _cifar(44, kwargs)


@register_model(params=853_018, input_size=_CIFAR)
def resnet56(**kwargs) -> ResNet:
    return _cifar(56, kwargs)


@register_model(params=1_727_962, input_size=_CIFAR)
def resnet110(**kwargs) -> ResNet:
    return _cifar(110, kwargs)


@register_model(params=269_722, input_size=_CIFAR)
def plain20(**kwargs) -> ResNet:
    return _cifar(20, {"skip": False, **kwargs})


@register_model(params=464_154, input_size=_CIFAR)
def plain32(**kwargs) -> ResNet:
    return _cifar(32, {"skip": False, **kwargs})


@register_model(params=658_586, input_size=_CIFAR)
def plain44(**kwargs) -> ResNet:
    return _cifar(44, {"skip": False, **kwargs})


@register_model(params=853_018, input_size=_CIFAR)
def plain56(**kwargs) -> ResNet:
    return _cifar(56, {"skip": False, **kwargs})


@register_model(params=1_727_962, input_size=_CIFAR)
def plain110(**kwargs) -> ResNet:
    return _cifar(110, {"skip": False, **kwargs})
