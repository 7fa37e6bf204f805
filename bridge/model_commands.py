"""``python -m bridge zoo|analyze``: the models listed and summarised layer by layer, and looked inside (gradient
flow, receptive fields, the bottleneck's arithmetic).

``register(subparsers)`` adds both commands to bridge's argparse parser; heavy imports happen in the handlers, so
``python -m bridge --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bridge.analysis.tables import markdown_table
from bridge.argtypes import non_negative_int, positive_float, positive_int
from bridge.errors import UnknownNameError
from bridge.runs import check_folder_path


def register(commands) -> None:
    """Add the ``zoo`` and ``analyze`` commands to ``commands`` (from ``ArgumentParser.add_subparsers``)."""
    zoo = commands.add_parser("zoo", help="the model zoo: list models, summarise one layer by layer")
    zoo_commands = zoo.add_subparsers(dest="zoo_command", metavar="<zoo command>", required=True)
    p = zoo_commands.add_parser("list", help="name, family, params, MACs and timm/torchvision twin of every model")
    p.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'resnet*'")
    p.set_defaults(func=zoo_list)
    p = zoo_commands.add_parser("summary", help="each layer or block: output shape, params, MACs")
    p.add_argument("name")
    p.add_argument("--input-size", nargs=3, type=positive_int, metavar=("C", "H", "W"), help="default: the model's own")
    p.add_argument(
        "--depth", type=depth_type, default=2, help="module depth to expand (1, 2, ...) or 'block' for residual blocks"
    )
    p.set_defaults(func=zoo_summary)

    analyze = commands.add_parser("analyze", help="look inside: gradient flow, receptive fields")
    analyze_commands = analyze.add_subparsers(dest="analyze_command", metavar="<analysis>", required=True)
    p = analyze_commands.add_parser("gradient-flow", help="per-block gradient norms, plain vs residual")
    p.add_argument("models", nargs="*", default=["plain20", "resnet20", "plain56", "resnet56"])
    p.add_argument("--twins", action="store_true", help="also build each model with skip=False")
    p.add_argument("--data", default="digits", help="digits, shapes, hf:<id>, imagefolder:<dir>")
    p.add_argument("--steps", type=positive_int, default=50, help="SGD steps between the two readings")
    p.add_argument("--lr", type=positive_float, default=0.01)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", default="runs/analysis")
    p.set_defaults(func=analyze_gradient_flow)
    p = analyze_commands.add_parser("receptive-field", help="stacked 3x3 vs one big conv; a layer's field measured")
    p.add_argument("--model", default="vgg16")
    p.add_argument("--layer", default="features.16", help="a layer name from `zoo summary` (default: vgg16 pool3)")
    p.add_argument("--input-size", nargs=3, type=positive_int, metavar=("C", "H", "W"), help="default 3x224x224")
    p.add_argument("--samples", type=positive_int, default=8, help="random inputs averaged")
    p.add_argument("--max-layers", type=positive_int, default=4)
    p.add_argument("--channels", type=positive_int, default=64)
    p.add_argument("--out", default="runs/analysis")
    p.set_defaults(func=analyze_receptive_field)
    p = analyze_commands.add_parser("bottleneck", help="1x1-3x3-1x1 against two 3x3 convs: weights and MACs")
    p.add_argument("--width", type=positive_int, default=64, help="the bottleneck's inner width (block I/O is 4x)")
    p.add_argument("--size", type=positive_int, default=56, help="feature map side for the MAC count")
    p.set_defaults(func=analyze_bottleneck)


def human(n: float) -> str:
    """1_253_683_200 -> '1.25 G'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def depth_type(text: str) -> int | str:
    """``zoo summary --depth``: 1, 2, ... or ``block``."""
    if text == "block":
        return text
    try:
        depth = int(text)
    except ValueError:
        depth = 0
    if depth < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, or 'block' (residual blocks), got {text!r}")
    return depth


def out_folder(out: str) -> Path:
    """An ``--out`` folder, checked before any work: missing (it is created) or a folder, never a file."""
    check_folder_path(out, "--out (a folder, created if missing)")
    return Path(out)


def zoo_list(args: argparse.Namespace) -> None:
    import torch

    from bridge.analysis.summary import count_macs
    from bridge.models import create_model, list_models, model_info

    names = list_models(args.pattern)
    if not names:
        raise UnknownNameError(f"no model matches {args.pattern!r}; try `python -m bridge zoo list`")
    table = Table(title="bridge zoo (MACs of one image at the default input)")
    for column in ("name", "family", "params", "MACs", "input", "twin"):
        table.add_column(column, justify="right" if column in ("params", "MACs") else "left")
    for name in names:
        info = model_info(name)
        with torch.device("meta"):  # shapes only: no memory, no init cost
            model = create_model(name).eval()
            macs = count_macs(model, torch.empty(1, *info.input_size))
        table.add_row(
            name, info.family, f"{info.params:,}", human(macs), "x".join(map(str, info.input_size)), info.twin or ""
        )
    Console().print(table)


def zoo_summary(args: argparse.Namespace) -> None:
    import torch

    from bridge.analysis.summary import summarize
    from bridge.models import create_model, model_info

    info = model_info(args.name)
    input_size = tuple(args.input_size) if args.input_size else info.input_size
    with torch.device("meta"):
        model = create_model(args.name)
    model.check_input(torch.empty(1, *input_size, device="meta"))
    summary = summarize(model, input_size, depth=args.depth)
    table = Table(title=f"{args.name} at {'x'.join(map(str, input_size))}")
    for column in ("layer", "kind", "output", "params", "MACs"):
        table.add_column(column, justify="right" if column in ("params", "MACs") else "left")
    for row in summary.rows:
        shape = "x".join(map(str, row.output_shape[1:])) if row.output_shape else ""
        table.add_row(row.name, row.kind, shape, f"{row.params:,}", human(row.macs) if row.macs else "")
    table.add_section()
    table.add_row("total", "", "", f"{summary.total_params:,}", human(summary.total_macs))
    Console().print(table)


def analyze_gradient_flow(args: argparse.Namespace) -> None:
    import torch

    from bridge.analysis.gradient_flow import gradient_flow
    from bridge.analysis.plots import plot_gradient_flow
    from bridge.data import ImageDataModule
    from bridge.models import create_model_for_input

    out = out_folder(args.out)
    data = ImageDataModule(args.data, batch_size=args.batch_size, seed=args.seed)
    data.prepare_data()
    data.setup("fit")
    input_size = (data.in_chans, data.image_size, data.image_size)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in args.models:
        twin = args.twins and not name.startswith("plain")  # a plain net is its own no-skip twin
        for label, kwargs in [(name, {})] + ([(f"{name} (noskip)", {"skip": False})] if twin else []):
            torch.manual_seed(args.seed)  # every model starts alike and sees the same batches in the same order
            model = create_model_for_input(name, input_size, data.num_classes, **kwargs)
            Console().print(f"[bold]{label}[/]: {args.steps} SGD steps on {args.data}")
            results[label] = gradient_flow(model, data.train_dataloader(), steps=args.steps, lr=args.lr)

    out.mkdir(parents=True, exist_ok=True)
    figure = plot_gradient_flow(results, out / "gradient_flow.png")
    rows = []
    for label, phases in results.items():
        for phase, norms in phases.items():
            values = list(norms.values())
            ratio = values[0] / values[-1] if values[-1] else float("inf")
            rows.append([label, phase, len(values), f"{values[0]:.3g}", f"{values[len(values) // 2]:.3g}",
                         f"{values[-1]:.3g}", f"{ratio:.3g}"])  # fmt: skip
    table = markdown_table(["model", "when", "blocks", "first block", "middle", "last block", "first/last"], rows)
    (out / "gradient_flow.md").write_text(table)
    print(table)
    print(f"figure: {figure}")


def analyze_receptive_field(args: argparse.Namespace) -> None:
    import torch

    from bridge.analysis.plots import plot_receptive_field
    from bridge.analysis.receptive_field import (
        compare_stacks,
        gradient_map,
        measured_size,
        sequential_receptive_field,
    )
    from bridge.models import create_model, model_info

    out = out_folder(args.out)
    rows = [
        [f"{r.layers} x {r.kernel}x{r.kernel}", f"{r.receptive_field}x{r.receptive_field}", f"{r.stacked_weights:,}",
         f"{r.single_weights:,}", f"{r.stacked_weights / r.single_weights:.2f}"]
        for r in compare_stacks(args.max_layers, 3, args.channels)
    ]  # fmt: skip
    header = ["stack", "receptive field", f"weights, stacked (C={args.channels})", "weights, one conv", "ratio"]
    table = markdown_table(header, rows)
    print(table)

    torch.manual_seed(0)
    model = create_model(args.model)
    input_size = tuple(args.input_size) if args.input_size else model_info(args.model).input_size
    grad = gradient_map(model, args.layer, input_size, samples=args.samples)
    try:
        analytic: int | None = sequential_receptive_field(model, args.layer)
    except KeyError:
        analytic = None
    measured = measured_size(grad)
    line = f"{args.model} {args.layer}: measured {measured}x{measured}"
    line += f", analytic {analytic}x{analytic}" if analytic is not None else ""
    print(line)
    out.mkdir(parents=True, exist_ok=True)
    (out / "receptive_field.md").write_text(table + "\n" + line + "\n")
    figure = plot_receptive_field(grad, analytic, line, out / f"receptive_field_{args.model}_{args.layer}.png")
    print(f"figure: {figure}")


def analyze_bottleneck(args: argparse.Namespace) -> None:
    """ResNet-50's 1x1-3x3-1x1 block against basic blocks: the paper's (on the narrow tensor) and one as wide."""
    import torch

    from bridge.analysis.summary import count_macs
    from bridge.models.resnet import BasicBlock, Bottleneck

    w, wide = args.width, 4 * args.width
    with torch.device("meta"):
        blocks = [  # (name, tensor width, block)
            (f"bottleneck 1x1 {w} -> 3x3 {w} -> 1x1 {wide}", wide, Bottleneck(wide, w)),
            (f"basic 3x3 {w} -> 3x3 {w}", w, BasicBlock(w, w)),
            (f"basic 3x3 {wide} -> 3x3 {wide}", wide, BasicBlock(wide, wide)),
        ]
    rows = []
    for name, channels, block in blocks:
        params = sum(p.numel() for p in block.parameters() if p.ndim == 4)  # convolution weights
        x = torch.empty(1, channels, args.size, args.size, device="meta")
        rows.append([name, f"{channels}-d", params, count_macs(block, x)])
    (_, _, p1, m1), _, (_, _, p2, m2) = rows
    table = markdown_table(
        ["block", "tensor", "conv weights", f"MACs at {args.size}x{args.size}"],
        [[n, t, f"{p:,}", human(m)] for n, t, p, m in rows],
    )
    print(table)
    print(
        f"on the same {wide}-d tensor the bottleneck needs {p2 / p1:.1f}x fewer weights and {m2 / m1:.1f}x fewer MACs"
    )
