"""The command line: ``python -m bridge <command>``.

(A bare ``bridge`` on Linux is iproute2's network tool, so the package installs no console script of
that name.)
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table


def human(n: float) -> str:
    """1_253_683_200 -> '1.25 G'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def zoo_list(args: argparse.Namespace) -> None:
    import torch

    from bridge.analysis.summary import count_macs
    from bridge.models import create_model, list_models, model_info

    names = list_models(args.pattern)
    if not names:
        raise SystemExit(f"no model matches {args.pattern!r}; try `python -m bridge zoo list`")
    table = Table(title="bridge zoo (MACs of one image at the default input)")
    for column in ("name", "family", "params", "MACs", "input", "twin"):
        table.add_column(column, justify="right" if column in ("params", "MACs") else "left")
    for name in names:
        info = model_info(name)
        with torch.device("meta"):  # shapes only: no memory, no init cost
            model = create_model(name).eval()
            macs = count_macs(model, torch.empty(1, *info.input_size))
        table.add_row(name, info.family, f"{info.params:,}", human(macs), "x".join(map(str, info.input_size)), info.twin or "")
    Console().print(table)


def zoo_summary(args: argparse.Namespace) -> None:
    import torch

    from bridge.analysis.summary import summarize
    from bridge.models import create_model, model_info

    info = model_info(args.name)
    input_size = tuple(args.input_size) if args.input_size else info.input_size
    depth = args.depth if args.depth == "block" else int(args.depth)
    with torch.device("meta"):
        model = create_model(args.name)
    model.check_input(torch.empty(1, *input_size, device="meta"))
    summary = summarize(model, input_size, depth=depth)
    table = Table(title=f"{args.name} at {'x'.join(map(str, input_size))}")
    for column in ("layer", "kind", "output", "params", "MACs"):
        table.add_column(column, justify="right" if column in ("params", "MACs") else "left")
    for row in summary.rows:
        shape = "x".join(map(str, row.output_shape[1:])) if row.output_shape else ""
        table.add_row(row.name, row.kind, shape, f"{row.params:,}", human(row.macs) if row.macs else "")
    table.add_section()
    table.add_row("total", "", "", f"{summary.total_params:,}", human(summary.total_macs))
    Console().print(table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bridge", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in LIGHTNING_COMMANDS:  # listed for --help; main() hands them to LightningCLI
        commands.add_parser(name, help=f"LightningCLI {name}: --config configs/<file>.yaml, any key overridable")

    zoo = commands.add_parser("zoo", help="the model zoo: list models, summarise one layer by layer")
    zoo_commands = zoo.add_subparsers(dest="zoo_command", metavar="<zoo command>", required=True)
    p = zoo_commands.add_parser("list", help="name, family, params, MACs and timm/torchvision twin of every model")
    p.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'resnet*'")
    p.set_defaults(func=zoo_list)
    p = zoo_commands.add_parser("summary", help="each layer or block: output shape, params, MACs")
    p.add_argument("name")
    p.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"), help="default: the model's own")
    p.add_argument("--depth", default="2", help="module depth to expand (1, 2, ...) or 'block' for residual blocks")
    p.set_defaults(func=zoo_summary)
    return parser


LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def lightning(argv: list[str]) -> None:
    """Hand ``fit|validate|test|predict ...`` to LightningCLI; show our errors without a traceback."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from bridge.lit.classifier import NonFiniteLossError
    from bridge.lit.lightning_cli import BridgeCLI

    try:
        BridgeCLI(args=argv)
    except (NonFiniteLossError, MisconfigurationException, FileNotFoundError, KeyError, ValueError) as err:
        raise SystemExit(f"error: {err.args[0] if err.args else err}") from None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in LIGHTNING_COMMANDS:
        return lightning(argv)
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (KeyError, ValueError) as err:  # our own errors carry the fix; no traceback needed
        raise SystemExit(f"error: {err.args[0] if err.args else err}") from None


if __name__ == "__main__":
    main()
