"""The degradation problem, reproduced (He et al. 2015, Figures 1 and 6).

plain-20, plain-56, ResNet-20 and ResNet-56 train on the same data with the same recipe; so do two 12-block
ViTs, with and without their skip connections (the same ``Residual`` flag). Deeper plain networks reach a
*higher training error* than shallow ones: not overfitting, an optimisation failure that ``x + F(x)``
removes. Output: a Figure-6-style PNG, a Markdown table and one W&B run per model, under runs/degradation/.

    python -m bridge run degradation [--preset cpu|paper]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path

from bridge.analysis.plots import plot_error_curves
from bridge.data import ImageDataModule
from recipes.compare import Recipe, Result, Run, batches, is_global_zero, train_all


@dataclass(frozen=True)
class Preset:
    source: str
    batch_size: int
    recipe: Recipe
    vit: dict  # the 12-block ViT, sized for the data
    image_size: int | None = None  # None: the source's own size
    augment: str = "none"
    num_workers: int = 0

    def runs(self) -> list[Run]:
        vit = "vit_tiny_patch16_224"
        return [
            Run("plain-20", "plain20"),
            Run("plain-56", "plain56"),
            Run("ResNet-20", "resnet20"),
            Run("ResNet-56", "resnet56"),
            Run("ViT-12", vit, dict(self.vit), "adamw"),
            Run("ViT-12 no skip", vit, {**self.vit, "skip": False}, "adamw"),
        ]


PRESETS = {
    # Scikit-learn's digits on 2 CPU cores: 1257 training images at batch 32 are 40 iterations an epoch,
    # so every net gets 800 iterations, the first 100 warming up at lr/10. The digits are 8x8 scans, so
    # 16x16 loses nothing against 32x32 and costs a quarter of the MACs (the CIFAR nets' three stages
    # then run at 16, 8 and 4 pixels). The ViT sees a 4x4 grid of 4x4 patches.
    "cpu": Preset(
        source="digits", batch_size=32, recipe=Recipe(epochs=20, warmup_steps=100), image_size=16,
        vit=dict(img_size=16, patch_size=4, embed_dim=64, depth=12, num_heads=4, mlp_ratio=2.0),
    ),
    # The paper's CIFAR-10 setting, for a GPU: 45k/5k split, batch 128, pad-crop-flip, about 64k iterations.
    "paper": Preset(
        source="hf:uoft-cs/cifar10", batch_size=128, recipe=Recipe(epochs=164, warmup_steps=400),
        vit=dict(img_size=32, patch_size=4, embed_dim=192, depth=12, num_heads=3),
        augment="cifar", num_workers=4,
    ),
}  # fmt: skip


def report(results: dict[str, Result], preset: str, num_classes: int) -> str:
    final = {label: (r.curves.train[-1], r.curves.test[-1]) for label, r in results.items()}
    rows = "\n".join(
        f"| {label} | {results[label].params:,} | {train:.2f} | {test:.2f} | {results[label].seconds:.0f} |"
        for label, (train, test) in final.items()
    )
    half_chance = 50.0 * (1 - 1 / num_classes)
    p20, p56, r20, r56 = (final[k][0] for k in ("plain-20", "plain-56", "ResNet-20", "ResNet-56"))
    vit, vit_plain = final["ViT-12"][0], final["ViT-12 no skip"][0]

    def yes(flag: bool) -> str:
        return "**yes**" if flag else "**no**"

    return f"""# Degradation, preset `{preset}`

Final errors in percent: training error is the last epoch's running error, held-out error the validation split.

| model | params | training error | held-out error | seconds |
| --- | --- | --- | --- | --- |
{rows}

- plain-56 ends with a higher training error than plain-20: {yes(p56 > p20)} ({p56:.2f}% vs {p20:.2f}%)
- ResNet-56 ends at or below ResNet-20: {yes(r56 <= r20)} ({r56:.2f}% vs {r20:.2f}%)
- the ViT without skips trains at all (training error under half of chance, {half_chance:.0f}%): {yes(vit_plain < half_chance)}
  ({vit_plain:.2f}%, against {vit:.2f}% with skips)
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bridge run degradation", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs (e.g. 1 for a smoke test)")
    parser.add_argument("--only", nargs="+", help="labels to run, e.g. plain-20 ResNet-20 (default: all six)")
    parser.add_argument("--out", default="runs/degradation")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--devices", default="auto")
    parser.add_argument("--limit-batches", type=batches, default=1.0, help="a fraction, or a number of batches")
    args = parser.parse_args(argv)
    trainer_kwargs = dict(accelerator=args.accelerator, devices=args.devices,
                          limit_train_batches=args.limit_batches, limit_val_batches=args.limit_batches)  # fmt: skip

    preset = PRESETS[args.preset]
    recipe = replace(preset.recipe, epochs=args.epochs) if args.epochs else preset.recipe
    runs = [r for r in preset.runs() if not args.only or r.label in args.only]
    out = Path(args.out) / args.preset
    data = ImageDataModule(preset.source, image_size=preset.image_size, batch_size=preset.batch_size, augment=preset.augment,
                           num_workers=preset.num_workers)  # fmt: skip
    results = train_all(runs, recipe, data, out, "degradation", **trainer_kwargs)
    if not is_global_zero():
        return
    curves = {label: {"train": r.curves.train, "test": r.curves.test} for label, r in results.items()}
    (out / "curves.json").write_text(json.dumps(curves, indent=1))
    panels = {
        "CNN: plain vs ResNet": [r.label for r in runs if r.optimizer == "sgd"],
        "Transformer: with and without skips": [r.label for r in runs if r.optimizer == "adamw"],
    }
    figure = plot_error_curves(curves, {title: labels for title, labels in panels.items() if labels},
                               out / "degradation.png")  # fmt: skip
    if len(runs) == len(preset.runs()):
        text = report(results, args.preset, data.num_classes)
        (out / "degradation.md").write_text(text)
        print(text)
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
