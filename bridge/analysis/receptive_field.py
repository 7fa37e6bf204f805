"""Receptive fields, analytic and measured.

Analytic: a stack of layers with kernel k_i and stride s_i sees ``1 + sum_i (k_i - 1) * prod_{j<i} s_j``
input pixels per side. Two 3x3 convolutions see 5x5 like one 5x5, three see 7x7, with 2*9*C^2 and 3*9*C^2
weights instead of 25*C^2 and 49*C^2 (VGG's argument).

Measured: the gradient of one output unit with respect to the input is non-zero exactly on the pixels that
unit can see (Luo et al. 2016, "effective receptive field"); averaged over random inputs it also shows how
much each pixel matters, which is concentrated near the centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class StackComparison:
    """n stacked k x k convolutions against the one convolution with the same receptive field."""

    layers: int
    kernel: int
    receptive_field: int
    stacked_weights: int  # n * k^2 * C^2
    single_weights: int  # rf^2 * C^2


def receptive_field(layers: list[tuple[int, int]]) -> int:
    """Side of the receptive field of ``[(kernel, stride), ...]`` applied in order (dilation 1)."""
    rf, jump = 1, 1
    for kernel, stride in layers:
        rf += (kernel - 1) * jump
        jump *= stride
    return rf


def compare_stacks(max_layers: int = 4, kernel: int = 3, channels: int = 64) -> list[StackComparison]:
    rows = []
    for n in range(1, max_layers + 1):
        rf = receptive_field([(kernel, 1)] * n)
        rows.append(StackComparison(n, kernel, rf, n * kernel**2 * channels**2, rf**2 * channels**2))
    return rows


def sequential_receptive_field(model: nn.Module, upto: str) -> int:
    """Analytic receptive field of a chain of convolutions and pools, from the input to module ``upto``.

    Valid for feed-forward chains (LeNet, AlexNet, VGG features); modules are taken in definition order.
    """
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s = module.kernel_size, module.stride
            k, s = (k if isinstance(k, int) else k[0]), (s if isinstance(s, int) else s[0])
            dilation = getattr(module, "dilation", 1)
            dilation = dilation if isinstance(dilation, int) else dilation[0]
            layers.append((dilation * (k - 1) + 1, s))
        if name == upto:
            return receptive_field(layers)
    raise KeyError(f"no module named {upto!r}")


def gradient_map(
    model: nn.Module, layer: str, input_shape: tuple[int, int, int], samples: int = 8, seed: int = 0
) -> Tensor:
    """Mean |d unit / d input| over ``samples`` random inputs, for the centre unit of ``layer``'s output.

    Returns an (H, W) map. The unit is the centre position of the layer's output summed over channels, so
    no single dead channel hides part of the field.
    """
    module = dict(model.named_modules()).get(layer)
    if module is None:
        raise KeyError(f"{type(model).__name__} has no layer {layer!r}; see `python -m bridge zoo summary`")
    captured: list[Tensor] = []
    handle = module.register_forward_hook(lambda m, a, out: captured.append(out))
    model.eval()
    g = torch.Generator().manual_seed(seed)
    total = torch.zeros(input_shape[1:])
    try:
        for _ in range(samples):
            captured.clear()
            x = torch.randn(1, *input_shape, generator=g).requires_grad_(True)
            try:
                model(x)
            except Exception:  # only the layer's output is needed; later layers may reject the size
                if not captured:
                    raise
            out = captured[0]
            if out.ndim != 4:
                raise ValueError(f"{layer} outputs {tuple(out.shape)}; pick a convolutional layer (B, C, H, W)")
            h, w = out.shape[-2] // 2, out.shape[-1] // 2
            (grad,) = torch.autograd.grad(out[0, :, h, w].sum(), x)
            total += grad[0].abs().sum(dim=0)
    finally:
        handle.remove()
    return total / samples


def measured_size(grad_map: Tensor) -> int:
    """Side of the bounding box of the pixels with a non-zero gradient."""
    rows = grad_map.abs().sum(dim=1).nonzero()
    cols = grad_map.abs().sum(dim=0).nonzero()
    if len(rows) == 0:
        return 0
    return int(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)
