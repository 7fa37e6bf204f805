"""AlexNet (Krizhevsky et al. 2012) in torchvision's layout: ReLU, dropout and max pooling at ImageNet scale."""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from bridge.models.base import ZooModel, check_sizes
from bridge.models.registry import register_model


class AlexNet(ZooModel):
    head_name = "classifier.6"
    # 11x11/4 conv and three 3x3/2 max pools: below 63 pixels the last pool has nothing left to pool.
    min_input_size = 63

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        check_sizes("AlexNet", 1, in_chans=in_chans)
        check_sizes("AlexNet", 0, num_classes=num_classes)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 256
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward_features(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.features(x)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.avgpool(features).flatten(1)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


@register_model(params=61_100_840, input_size=(3, 224, 224), twin="torchvision/alexnet")
def alexnet(**kwargs) -> AlexNet:
    return AlexNet(**kwargs)
