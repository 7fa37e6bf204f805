"""Shortcut options A, B and C (He et al. 2015, Table 3) on the CIFAR ResNets.

A: parameter-free (subsample + zero channels) where the shape changes; B: a 1x1 projection there only;
C: a projection on every block. Prints the parameter cost of each and trains all on the same recipe; errors are
means over the training seeds (``--seeds N --seed S``), each seed's curves are in curves.json.

    python -m bridge run shortcuts [--epochs N] [--models resnet20 resnet32] [--seeds 3] [--trainer.<setting> VALUE]
"""

from __future__ import annotations

import json
from pathlib import Path

from jsonargparse.typing import PositiveInt

from bridge.analysis.plots import plot_error_curves
from bridge.analysis.tables import markdown_table
from bridge.data import ImageDataModule
from recipes import kit
from recipes.classifier_sweep import Recipe, Run, add_seed_arguments, error_curves, final_errors, seed_list, train_all


def main(argv: list[str] | None = None) -> None:
    parser = kit.recipe_parser("shortcuts", __doc__)
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet32"])
    parser.add_argument("--source", default="digits")
    parser.add_argument("--epochs", type=PositiveInt, default=10)
    parser.add_argument("--batch-size", type=PositiveInt, default=32)
    parser.add_argument("--out", default="runs/shortcuts")
    add_seed_arguments(parser)
    args = kit.parse(parser, argv)
    kit.out_folder(args.out)

    runs = [Run(f"{m} {opt}", m, {"shortcut": opt}) for m in args.models for opt in "ABC"]
    data = ImageDataModule(args.source, batch_size=args.batch_size)
    out = Path(args.out)
    results = train_all(runs, Recipe(epochs=args.epochs), data, out, "shortcuts", args.trainer, seed_list(args))
    if not kit.is_global_zero():
        return
    text = markdown_table(
        ["model", "params", "vs option A", "training error (%)", "held-out error (%)"],
        [[label, f"{rs[0].params:,}", f"{rs[0].params - results[label.split()[0] + ' A'][0].params:+,}",
          f"{final_errors(rs, 'train').mean():.2f}", f"{final_errors(rs, 'test').mean():.2f}"]
         for label, rs in results.items()],
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "shortcuts.md").write_text(text)
    curves = error_curves(results)
    (out / "curves.json").write_text(json.dumps(curves, indent=1))
    figure = plot_error_curves(curves, {m: [f"{m} {o}" for o in "ABC"] for m in args.models}, out / "shortcuts.png")
    print(text)
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
