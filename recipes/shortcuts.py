"""Shortcut options A, B and C (He et al. 2015, Table 3) on the CIFAR ResNets.

A: parameter-free (subsample + zero channels) where the shape changes; B: a 1x1 projection there only;
C: a projection on every block. Prints the parameter cost of each and trains all on the same recipe.

    python -m bridge run shortcuts [--epochs N] [--models resnet20 resnet32]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bridge.analysis.plots import plot_error_curves
from bridge.data import ImageDataModule
from recipes.compare import Recipe, Run, batches, is_global_zero, train_all


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bridge run shortcuts", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet32"])
    parser.add_argument("--source", default="digits")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default="runs/shortcuts")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--devices", default="auto")
    parser.add_argument("--limit-batches", type=batches, default=1.0, help="a fraction, or a number of batches")
    args = parser.parse_args(argv)
    trainer_kwargs = dict(accelerator=args.accelerator, devices=args.devices,
                          limit_train_batches=args.limit_batches, limit_val_batches=args.limit_batches)  # fmt: skip

    runs = [Run(f"{m} {opt}", m, {"shortcut": opt}) for m in args.models for opt in "ABC"]
    data = ImageDataModule(args.source, batch_size=args.batch_size)
    out = Path(args.out)
    results = train_all(runs, Recipe(epochs=args.epochs), data, out, "shortcuts", **trainer_kwargs)
    if not is_global_zero():
        return
    rows = "\n".join(
        f"| {label} | {r.params:,} | {r.params - results[label.split()[0] + ' A'].params:+,} | "
        f"{r.curves.train[-1]:.2f} | {r.curves.test[-1]:.2f} |"
        for label, r in results.items()
    )
    text = (
        "| model | params | vs option A | training error (%) | held-out error (%) |\n"
        "| --- | --- | --- | --- | --- |\n" + rows + "\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "shortcuts.md").write_text(text)
    curves = {label: {"train": r.curves.train, "test": r.curves.test} for label, r in results.items()}
    figure = plot_error_curves(curves, {m: [f"{m} {o}" for o in "ABC"] for m in args.models}, out / "shortcuts.png")
    print(text)
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
