"""Receptive fields, analytic and measured.

Analytic: a stack of layers with kernel k_i and stride s_i sees ``1 + sum_i (k_i - 1) * prod_{j<i} s_j``
input pixels per side. Two 3x3 convolutions see 5x5 like one 5x5, three see 7x7, with 2*9*C^2 and 3*9*C^2
weights instead of 25*C^2 and 49*C^2 (VGG's argument).

Measured: the gradient of one output unit with respect to the input is non-zero exactly on the pixels that
unit can see (Luo et al. 2016, "effective receptive field"); averaged over random inputs it also shows how
much each pixel matters, which is concentrated near the centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bridge.errors import ConfigError, UnknownNameError


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
    _check_positive(max_layers=max_layers, kernel=kernel, channels=channels)
    rows = []
    for n in range(1, max_layers + 1):
        rf = receptive_field([(kernel, 1)] * n)
        rows.append(StackComparison(n, kernel, rf, n * kernel**2 * channels**2, rf**2 * channels**2))
    return rows


def _kernel_stride(module: nn.Module) -> tuple[int, int]:
    """Effective kernel (dilation included) and stride along one side."""
    k, s = module.kernel_size, module.stride
    k, s = (k if isinstance(k, int) else k[0]), (s if isinstance(s, int) else s[0])
    dilation = getattr(module, "dilation", 1)
    dilation = dilation if isinstance(dilation, int) else dilation[0]
    return dilation * (k - 1) + 1, s


def sequential_receptive_field(model: nn.Module, upto: str) -> int | None:
    """Analytic receptive field of module ``upto``'s output: its convolutions and pools from the input on.

    Modules are walked in definition order (LeNet, AlexNet, VGG, ResNet all define them in the order they
    run). A :class:`~bridge.nn.Residual` block sees what either path sees, the larger of its branch's field
    and its shortcut's; the shortcut (identity, option A's subsampling, a 1x1 projection) never sees more,
    so a residual network's field grows exactly as its plain twin's. ``None`` after attention, which lets
    every position see the whole input.
    """
    from bridge.nn import Attention, Residual  # analysis sits below nn in the import order only at call time

    fields: dict[str, float] = {}

    def walk(name: str, module: nn.Module, rf: float, jump: int) -> tuple[float, int]:
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            kernel, stride = _kernel_stride(module)
            rf, jump = rf + (kernel - 1) * jump, jump * stride
        elif isinstance(module, (Attention, nn.MultiheadAttention)):
            rf = math.inf
        elif isinstance(module, Residual):
            branch_rf, branch_jump = walk(f"{name}.branch", module.branch, rf, jump)
            if module.skip:  # both paths end on the same grid, so they share the branch's jump
                rf = max(branch_rf, walk(f"{name}.shortcut", module.shortcut, rf, jump)[0])
            else:
                rf = branch_rf
            rf, jump = walk(f"{name}.post_act", module.post_act, rf, branch_jump)
        else:
            for child_name, child in module.named_children():
                rf, jump = walk(f"{name}.{child_name}" if name else child_name, child, rf, jump)
        fields[name] = rf
        return rf, jump

    walk("", model, 1, 1)
    if upto not in fields:
        raise UnknownNameError(
            f"{type(model).__name__} has no layer {upto!r}; `python -m bridge zoo summary <model>` lists them"
        )
    return None if math.isinf(fields[upto]) else int(fields[upto])


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer, 1 or more, got {value!r}")


class _Captured(Exception):
    """Stops the forward pass once the layer of interest has produced its output."""


def gradient_map(
    model: nn.Module, layer: str, input_shape: tuple[int, int, int], samples: int = 8, seed: int = 0
) -> Tensor:
    """Mean |d unit / d input| over ``samples`` random inputs, for the centre unit of ``layer``'s output.

    Returns an (H, W) map. The unit is the centre position of the layer's output summed over channels, so
    no single dead channel hides part of the field.
    """
    _check_positive(samples=samples, **{f"input_shape[{i}]": n for i, n in enumerate(input_shape)})
    module = dict(model.named_modules()).get(layer)
    if module is None:
        raise UnknownNameError(
            f"{type(model).__name__} has no layer {layer!r}; `python -m bridge zoo summary <model>` lists them"
        )
    captured: list[Tensor] = []

    def stop(module: nn.Module, args, out: Tensor) -> None:
        captured.append(out)
        raise _Captured  # the layers above are not needed (and may reject the input size)

    handle = module.register_forward_hook(stop)
    model.eval()
    g = torch.Generator().manual_seed(seed)
    total = torch.zeros(input_shape[1:])
    try:
        for _ in range(samples):
            captured.clear()
            x = torch.randn(1, *input_shape, generator=g).requires_grad_(True)
            try:
                model(x)
            except _Captured:
                pass
            out = captured[0]
            if out.ndim != 4:
                raise ConfigError(f"{layer} outputs {tuple(out.shape)}; pick a convolutional layer (B, C, H, W)")
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
