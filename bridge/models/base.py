"""What every zoo model is: ``forward_features`` / ``forward_head`` / ``encode`` and a checked input."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn


class EncoderOutput(NamedTuple):
    """How any model serves as a VLA vision encoder.

    ``tokens`` (B, N, D): the last CNN feature map flattened (N = H*W) or the ViT's patch tokens.
    ``pooled`` (B, D): one vector per image (global average pool, or the ViT's class token).
    """

    tokens: Tensor
    pooled: Tensor


class ZooModel(nn.Module):
    """Base of the zoo. Subclasses set the attributes below and implement the two forward halves."""

    num_classes: int
    num_features: int  # D of ``encode`` and the width ``forward_head`` reads
    in_chans: int
    fixed_input_size: tuple[int, int] | None = None  # (H, W) the model requires, if any
    min_input_size: int = 1  # smallest H and W the layers can shrink without vanishing
    head_name: str  # the classifier Linear, replaced by ``reset_classifier`` and skipped by ``drop_head``

    def forward_features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def encode(self, x: Tensor) -> EncoderOutput:
        features = self.forward_features(x)  # (B, C, H, W) for CNNs
        tokens = features.flatten(2).transpose(1, 2)
        return EncoderOutput(tokens, tokens.mean(dim=1))

    def check_input(self, x: Tensor) -> None:
        """Raise a ValueError naming the expected and the given shape, before torch fails deep inside."""
        name = type(self).__name__
        if not isinstance(x, Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} expects images as a tensor (B, C, H, W), got {shape}")
        _, c, h, w = x.shape
        if c != self.in_chans:
            raise ValueError(
                f"{name} expects {self.in_chans} input channels, got input of shape {tuple(x.shape)}; "
                f"convert the images or build the model with in_chans={c}"
            )
        if self.fixed_input_size is not None and (h, w) != tuple(self.fixed_input_size):
            fh, fw = self.fixed_input_size
            raise ValueError(
                f"{name} expects input (B, {c}, {fh}, {fw}), got {tuple(x.shape)}; "
                f"resize the images or build the model for this size"
            )
        if min(h, w) < self.min_input_size:
            m = self.min_input_size
            raise ValueError(
                f"{name} needs images of at least {m}x{m} pixels, got {tuple(x.shape)}; resize the images"
            )

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one for ``num_classes`` outputs."""
        parent_name, _, child = self.head_name.rpartition(".")
        parent = self.get_submodule(parent_name)
        old = getattr(parent, child)
        setattr(parent, child, nn.Linear(old.in_features, num_classes).to(old.weight.device, old.weight.dtype))
        self.num_classes = num_classes
