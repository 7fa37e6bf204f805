"""Layer-by-layer tables of a model: output shape, parameters and MACs (from ``torch.utils.flop_counter``).

Run on the meta device by default, so even VGG-19 at 224x224 is summarised in a fraction of a second
without allocating its 143M weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bridge.errors import ConfigError


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


POOLS = (nn.MaxPool2d, nn.AvgPool2d)


def stages(prefix: str, sequence: nn.Sequential) -> dict[str, list[str]]:
    """VGG-style blocks of a plain ``nn.Sequential``: the runs of layers that end at each pooling layer,
    or, for a stack of fully connected layers, one group per ``nn.Linear`` with the activation and
    dropout that follow it. Keys are row names (``features.0-4``), values the member module names."""
    layers = dict(sequence.named_children())
    pooled = any(isinstance(m, POOLS) for m in layers.values())
    groups: list[list[str]] = [[]]
    for name, module in layers.items():
        if not pooled and isinstance(module, nn.Linear) and any(isinstance(layers[n], nn.Linear) for n in groups[-1]):
            groups.append([])  # the next fully connected layer starts a new row
        groups[-1].append(name)
        if pooled and isinstance(module, POOLS):
            groups.append([])  # a pooling layer closes a stage
    groups = [g for g in groups if g]
    rows = {}
    for group in groups:
        label = group[0] if len(group) == 1 else f"{group[0]}-{group[-1]}"
        rows[f"{prefix}.{label}"] = [f"{prefix}.{n}" for n in group]
    return rows


def select_modules(model: nn.Module, depth: int | str) -> dict[str, list[str]]:
    """The rows of the table, each a list of module names whose parameters and MACs it adds up.

    ``depth=n``: every module ``n`` levels down (or a leaf above that), one row each. ``depth="block"``:
    every residual block; plain ``nn.Sequential`` stacks (VGG's features and classifier, LeNet's, AlexNet's)
    split into the stages between pooling layers and one row per fully connected layer; other layers one row
    each.
    """
    from bridge.nn import Residual  # analysis sits below nn in the import order only at call time

    if depth != "block" and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise ConfigError(f"depth must be 1 or more, or 'block' (residual blocks), got {depth!r}")
    chosen: dict[str, list[str]] = {}

    def visit(prefix: str, module: nn.Module, level: int) -> None:
        children = list(module.named_children())
        if depth == "block":
            if isinstance(module, Residual):
                chosen[prefix] = [prefix]
                return
            plain = not any(isinstance(m, Residual) for m in module.modules())
            blocky = any(isinstance(m, (*POOLS, nn.Linear)) for _, m in children)
            if prefix and plain and blocky and isinstance(module, nn.Sequential):
                chosen.update(stages(prefix, module))
                return
            stop = False
        else:
            stop = level >= int(depth)
        if prefix and (stop or not children):
            chosen[prefix] = [prefix]
            return
        for name, child in children:
            visit(f"{prefix}.{name}" if prefix else name, child, level + 1)

    visit("", model, 0)
    return chosen


def describe(modules: list[nn.Module]) -> str:
    """A short kind label. One module: its class (convolutions with kernel and stride; residual blocks with
    their branch convolutions, the bottleneck's 1x1-3x3-1x1). A stage: its convolutions and its pooling;
    a fully connected row: its ``in -> out`` features."""
    from bridge.nn import Residual

    if len(modules) > 1:
        linears = [m for m in modules if isinstance(m, nn.Linear)]
        if linears:
            return ", ".join(f"Linear {m.in_features} -> {m.out_features}" for m in linears)
        convs = [m for m in modules if isinstance(m, nn.Conv2d)]
        count = f"{len(convs)} x " if len(convs) > 1 else ""
        parts = [f"{count}Conv2d {c.kernel_size[0]}x{c.kernel_size[1]} -> {c.out_channels}" for c in convs[-1:]]
        return " + ".join(parts + [type(m).__name__ for m in modules if isinstance(m, POOLS)])
    module = modules[0]
    kind = type(module).__name__
    if isinstance(module, nn.Conv2d):
        return f"{kind} {module.kernel_size[0]}x{module.kernel_size[1]}/{module.stride[0]}"
    if isinstance(module, nn.Linear):
        return f"{kind} {module.in_features} -> {module.out_features}"
    if isinstance(module, Residual):
        convs = [m for m in module.branch.modules() if isinstance(m, nn.Conv2d)]
        if convs:
            widths = " -> ".join(f"{c.kernel_size[0]}x{c.kernel_size[1]} {c.out_channels}" for c in convs)
            projected = any(isinstance(m, nn.Conv2d) for m in module.shortcut.modules())
            shortcut = "proj" if projected else type(module.shortcut).__name__.replace("Shortcut", "").lower()
            return f"{kind} [{widths}] +{shortcut}" if module.skip else f"{kind} [{widths}] (no skip)"
    return kind


def summarize(model: nn.Module, input_shape: tuple[int, ...], depth: int | str = 2, device: str = "meta") -> Summary:
    """Trace one forward pass of a (1, *input_shape) input and tabulate the rows picked by ``depth``
    (see :func:`select_modules`)."""
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

    modules = dict(model.named_modules())
    handles = []
    for name, members in selected.items():
        pre_hook, hook = record(name)
        handles += [modules[members[0]].register_forward_pre_hook(pre_hook)]
        handles += [modules[members[-1]].register_forward_hook(hook)]
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
        members = selected[name]
        params = sum(p.numel() for n in members for p in modules[n].parameters())
        macs = sum(sum(flops.get(f"{root}.{n}", {}).values()) for n in members) // 2
        rows.append(LayerRow(name, describe([modules[n] for n in members]), shapes.get(name), params, macs))
    total = sum(p.numel() for p in model.parameters())
    return Summary(rows, (1, *input_shape), total, counter.get_total_flops() // 2)
