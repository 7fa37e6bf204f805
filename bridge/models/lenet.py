"""LeNet-5 (LeCun et al. 1998): conv -> pool -> conv -> pool -> FC -> FC -> classes.

Learned filters instead of hand-made features; the layout every CNN since still follows. Kept 1998
style by default (tanh, average pooling), so AlexNet's switch to ReLU and max pooling is a visible change.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from bridge.models.base import ZooModel, check_sizes
from bridge.models.registry import register_model


class LeNet5(ZooModel):
    head_name = "classifier.fc3"

    def __init__(self, num_classes: int = 10, in_chans: int = 1, act_layer: type[nn.Module] = nn.Tanh) -> None:
        super().__init__()
        check_sizes("LeNet5", 1, in_chans=in_chans)
        check_sizes("LeNet5", 0, num_classes=num_classes)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 16
        # Two FC layers read the 16 maps of 5x5 by position, so the input must be exactly 32x32.
        self.fixed_input_size = (32, 32)
        self.features = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(in_chans, 6, kernel_size=5),  # 32 -> 28
                act1=act_layer(),
                pool1=nn.AvgPool2d(2),  # 28 -> 14
                conv2=nn.Conv2d(6, 16, kernel_size=5),  # 14 -> 10
                act2=act_layer(),
                pool2=nn.AvgPool2d(2),  # 10 -> 5
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                fc1=nn.Linear(16 * 5 * 5, 120),
                act1=act_layer(),
                fc2=nn.Linear(120, 84),
                act2=act_layer(),
                fc3=nn.Linear(84, num_classes),
            )
        )

    def forward_features(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.features(x)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        return self.classifier[:-1](features) if pre_logits else self.classifier(features)


@register_model(params=61_706, input_size=(1, 32, 32))
def lenet5(**kwargs) -> LeNet5:
    return LeNet5(**kwargs)
