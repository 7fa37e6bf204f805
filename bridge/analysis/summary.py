"""Layer-by-layer tables of a model: output shape, parameters and MACs (from ``torch.utils.flop_counter``).

Run on the meta device by default, so even VGG-19 at 224x224 is summarised in a fraction of a second
without allocating its 143M weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int


@dataclass(frozen=True)
class Summary:
    rows: list[LayerRow]
    input_shape: tuple[int, ...]
    total_params: int
    total_macs: int


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass (FLOPs / 2, as torchvision and timm report them)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def select_modules(model: nn.Module, depth: int | str) -> dict[str, nn.Module]:
    """The modules one table row each: those ``depth`` levels down (or leaves above that), or for
    ``depth="block"`` every residual block (and the layers outside them)."""
    from bridge.nn import Residual  # analysis sits below nn in the import order only at call time

    chosen: dict[str, nn.Module] = {}

    def visit(prefix: str, module: nn.Module, level: int) -> None:
        children = list(module.named_children())
        stop = isinstance(module, Residual) if depth == "block" else level >= int(depth)
        if prefix and (stop or not children):
            chosen[prefix] = module
            return
        for name, child in children:
            visit(f"{prefix}.{name}" if prefix else name, child, level + 1)

    visit("", model, 0)
    return chosen


def describe(module: nn.Module) -> str:
    """A short kind label; residual blocks list their branch convolutions (the bottleneck's 1x1-3x3-1x1)."""
    from bridge.nn import Residual

    kind = type(module).__name__
    if isinstance(module, nn.Conv2d):
        return f"{kind} {module.kernel_size[0]}x{module.kernel_size[1]}/{module.stride[0]}"
    if isinstance(module, Residual):
        convs = [m for m in module.branch.modules() if isinstance(m, nn.Conv2d)]
        if convs:
            widths = " -> ".join(f"{c.kernel_size[0]}x{c.kernel_size[1]} {c.out_channels}" for c in convs)
            projected = any(isinstance(m, nn.Conv2d) for m in module.shortcut.modules())
            shortcut = "proj" if projected else type(module.shortcut).__name__.replace("Shortcut", "").lower()
            return f"{kind} [{widths}] +{shortcut}" if module.skip else f"{kind} [{widths}] (no skip)"
    return kind


def summarize(model: nn.Module, input_shape: tuple[int, ...], depth: int | str = 2, device: str = "meta") -> Summary:
    """Trace one forward pass of a (1, *input_shape) input and tabulate the modules picked by ``depth``."""
    model = model.to(device).eval()
    selected = select_modules(model, depth)
    order: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str):  # hooks must return None, or they would replace the module's output
        def pre_hook(module, args) -> None:
            order.append(name)

        def hook(module, args, out) -> None:
            shapes.setdefault(name, tuple(out.shape) if torch.is_tensor(out) else None)

        return pre_hook, hook

    handles = []
    for name, module in selected.items():
        pre_hook, hook = record(name)
        handles += [module.register_forward_pre_hook(pre_hook), module.register_forward_hook(hook)]
    x = torch.zeros(1, *input_shape, device=device)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    flops = counter.get_flop_counts()
    root = type(model).__name__

    rows = []
    own = [n for n, _ in model.named_parameters(recurse=False)]
    if own:  # e.g. the ViT's class token and position embedding
        rows.append(LayerRow(", ".join(own), "Parameter", None, sum(p.numel() for p in model.parameters(False)), 0))
    for name in dict.fromkeys(order + [n for n in selected if n not in order]):
        module = selected[name]
        macs = sum(flops.get(f"{root}.{name}", {}).values()) // 2
        rows.append(LayerRow(name, describe(module), shapes.get(name), sum(p.numel() for p in module.parameters()), macs))
    total = sum(p.numel() for p in model.parameters())
    return Summary(rows, (1, *input_shape), total, counter.get_total_flops() // 2)
