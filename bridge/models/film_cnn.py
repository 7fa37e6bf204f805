"""The FiLM-CNN of BabyAI 1.1 (Hui et al. 2020), the grid-world field's own reference encoder.

A patch stem (one 8x8, stride-8 convolution: a 56x56 view becomes the 7x7 grid of cells it was drawn from),
two 3x3 convolutions, then residual blocks whose second convolution the instruction modulates by FiLM
(Perez et al. 2018), and a max-pool over the grid at the end. In BabyAI a bag-of-words instruction drives
the FiLM layers and an LSTM follows; in bridge the policy supplies both: the instruction's pooled encoding
feeds FiLM at :meth:`FilmCNN.film_sites`, and the frame history and trunk replace the LSTM.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from bridge.models.base import EncoderOutput, ZooModel, check_sizes
from bridge.models.registry import register_model
from bridge.nn import Residual


def conv3x3_bn_relu(in_chs: int, out_chs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(out_chs), nn.ReLU(inplace=True)
    )


class FiLMBlock(Residual):
    """x + relu(bn(conv3x3(relu(bn(conv3x3(x)))))), FiLM acting on the second convolution's output (BabyAI's order)."""

    def __init__(self, width: int) -> None:
        branch = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False),
                bn1=nn.BatchNorm2d(width),
                act1=nn.ReLU(inplace=True),
                conv2=nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(width),
                act2=nn.ReLU(inplace=True),
            )
        )
        super().__init__(branch)


class FilmCNN(ZooModel):
    head_name = "fc"

    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, patch_size: int = 8, width: int = 128, depth: int = 2
    ) -> None:
        super().__init__()
        check_sizes("FilmCNN", 1, in_chans=in_chans, patch_size=patch_size, width=width)
        check_sizes("FilmCNN", 0, num_classes=num_classes, depth=depth)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, width
        self.min_input_size = patch_size
        # One cell of the grid per output position: the stem's kernel is the tile, its stride the tile too.
        self.stem = nn.Conv2d(in_chans, width, kernel_size=patch_size, stride=patch_size)
        self.convs = nn.Sequential(conv3x3_bn_relu(width, width), conv3x3_bn_relu(width, width))
        self.blocks = nn.Sequential(*[FiLMBlock(width) for _ in range(depth)])
        self.fc = nn.Linear(width, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.blocks(self.convs(self.stem(x)))

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        pooled = features.amax(dim=(2, 3))  # BabyAI's end-pool: is the object anywhere in view?
        return pooled if pre_logits else self.fc(pooled)

    def encode(self, x: Tensor) -> EncoderOutput:
        features = self.forward_features(x)
        return EncoderOutput(features.flatten(2).transpose(1, 2), features.amax(dim=(2, 3)))

    def film_sites(self) -> list[str]:
        """The second convolution of every block, where BabyAI 1.1 applies its FiLM."""
        return [f"blocks.{i}.branch.conv2" for i in range(len(self.blocks))]


@register_model(params=1_039_976, input_size=(3, 56, 56))
def babyai_film_cnn(**kwargs) -> FilmCNN:
    """BabyAI 1.1's pixel encoder: 8x8 patch stem, 128 channels, two FiLM blocks; 56x56 -> a 7x7 grid."""
    return FilmCNN(**kwargs)
