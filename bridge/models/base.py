"""What every zoo model is: ``forward_features`` / ``forward_head`` / ``encode``, a checked input, and the
hooks through which a family tells the rest of bridge about itself (weight names, input sizing, FiLM sites)."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from torch import Tensor, nn

from bridge.errors import ConfigError


class EncoderOutput(NamedTuple):
    """How any model serves as a VLA vision encoder.

    ``tokens`` (B, N, D): the last CNN feature map flattened (N = H*W) or the ViT's patch tokens.
    ``pooled`` (B, D): one vector per image (global average pool, or the ViT's class token).
    """

    tokens: Tensor
    pooled: Tensor


class ZooModel(nn.Module):
    """Base of the zoo. Subclasses set the attributes below and implement the two forward halves.

    A family overrides the hooks it needs; the weights code, the factory and the VLA policy only call them.
    """

    num_classes: int
    num_features: int  # D of ``encode`` and the width ``forward_head`` reads
    in_chans: int
    fixed_input_size: tuple[int, int] | None = None  # (H, W) the model requires, if any
    min_input_size: int = 1  # smallest H and W the layers can shrink without vanishing
    head_name: str  # the classifier Linear, replaced by ``reset_classifier`` and skipped by ``drop_head``
    # (ours, theirs) prefix templates from our parameter names to the timm/torchvision twin's, "{}" standing
    # for an index: read one way to import weights and the other way to export them. Empty: the same names.
    timm_key_rules: ClassVar[list[tuple[str, str]]] = []

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

    def film_sites(self) -> list[str]:
        """Names of the submodules after whose output FiLM may act (a VLA policy conditions them on the
        instruction). None by default: the policy then conditions its trunk only."""
        return []

    def adapt_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A state dict under our names, made to fit this model before loading (e.g. resampled embeddings)."""
        return state

    @classmethod
    def input_kwargs(cls, input_size: tuple[int, int, int]) -> dict:
        """Settings besides ``in_chans`` that size the model for ``(C, H, W)`` images; none by default."""
        return {}

    def check_input(self, x: Tensor) -> None:
        """Raise a ConfigError (a ValueError) naming the expected and the given shape, before torch fails."""
        name = type(self).__name__
        if not isinstance(x, Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ConfigError(f"{name} expects images as a tensor (B, C, H, W), got {shape}")
        _, c, h, w = x.shape
        if c != self.in_chans:
            raise ConfigError(
                f"{name} expects {self.in_chans} input channels, got input of shape {tuple(x.shape)}; "
                f"convert the images or build the model with in_chans={c}"
            )
        if self.fixed_input_size is not None and (h, w) != tuple(self.fixed_input_size):
            fh, fw = self.fixed_input_size
            raise ConfigError(
                f"{name} expects input (B, {c}, {fh}, {fw}), got {tuple(x.shape)}; "
                f"resize the images or build the model for this size"
            )
        if min(h, w) < self.min_input_size:
            m = self.min_input_size
            raise ConfigError(
                f"{name} needs images of at least {m}x{m} pixels, got {tuple(x.shape)}; resize the images"
            )

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one for ``num_classes`` outputs."""
        parent_name, _, child = self.head_name.rpartition(".")
        parent = self.get_submodule(parent_name)
        old = getattr(parent, child)
        setattr(parent, child, nn.Linear(old.in_features, num_classes).to(old.weight.device, old.weight.dtype))
        self.num_classes = num_classes


def check_sizes(owner: str, minimum: int, **sizes: int | tuple[int, ...]) -> None:
    """Raise a ConfigError unless every size (an int, or a tuple of ints) is an integer >= ``minimum``.

    Models call it first in ``__init__``, so ``patch_size=0`` is named as such instead of failing in a conv.
    """
    for arg, value in sizes.items():
        values = value if isinstance(value, (tuple, list)) else (value,)
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in values):
            kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise ConfigError(f"{owner}: {arg} must be {kind} (or a tuple of them), got {value!r}")
