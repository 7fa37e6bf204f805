"""The degradation problem, reproduced (He et al. 2015, Figures 1 and 6).

plain-20, plain-56, ResNet-20 and ResNet-56 train on the same data with the same recipe; so do two 12-block
ViTs, with and without their skip connections (the same ``Residual`` flag). Deeper plain networks reach a
*higher training error* than shallow ones: not overfitting, an optimisation failure that ``x + F(x)``
removes. Output: a Figure-6-style PNG, a Markdown table and one W&B run per model, under runs/degradation/.

    python -m bridge run degradation [--preset cpu|paper] [--trainer.accelerator gpu --trainer.devices 4]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from jsonargparse.typing import PositiveInt

from bridge.analysis.plots import plot_error_curves
from bridge.analysis.tables import markdown_table
from bridge.data import ImageDataModule
from recipes import kit
from recipes.compare import Recipe, Result, Run, error_curves, train_all


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
        source="digits", batch_size=32, recipe=Recipe(epochs=20), image_size=16,
        vit=dict(img_size=16, patch_size=4, embed_dim=64, depth=12, num_heads=4, mlp_ratio=2.0),
    ),
    # He et al.'s CIFAR-10 recipe (sec. 4.2), for a GPU, as in configs/resnet20_cifar10.yaml: 45k/5k split,
    # pad-crop-flip, batch 128, SGD lr 0.1 (momentum 0.9, weight decay 1e-4) / 10 at 32k and 48k iterations,
    # stop at 64k; no warm-up below 110 layers. The ViTs, which the paper does not train, take AdamW on the same
    # schedule after a 400-iteration warm-up.
    "paper": Preset(
        source="hf:uoft-cs/cifar10", batch_size=128,
        recipe=Recipe(max_steps=64000, schedule="multistep", milestones=(32000, 48000), warmup_sgd=0,
                      warmup_adamw=400),
        vit=dict(img_size=32, patch_size=4, embed_dim=192, depth=12, num_heads=3),
        augment="cifar", num_workers=4,
    ),
}  # fmt: skip


def report(results: dict[str, Result], preset: str, num_classes: int) -> str:
    final = {label: (r.curves.train[-1], r.curves.test[-1]) for label, r in results.items()}
    table = markdown_table(
        ["model", "params", "training error", "held-out error", "seconds"],
        [[label, f"{results[label].params:,}", f"{train:.2f}", f"{test:.2f}", f"{results[label].seconds:.0f}"]
         for label, (train, test) in final.items()],
    )  # fmt: skip
    half_chance = 50.0 * (1 - 1 / num_classes)
    p20, p56, r20, r56 = (final[k][0] for k in ("plain-20", "plain-56", "ResNet-20", "ResNet-56"))
    vit, vit_plain = final["ViT-12"][0], final["ViT-12 no skip"][0]

    def yes(flag: bool) -> str:
        return "**yes**" if flag else "**no**"

    vit_trains = yes(vit_plain < half_chance)

    return f"""# Degradation, preset `{preset}`

Final errors in percent: training error is the last epoch's running error, held-out error the validation split.

{table}
- plain-56 ends with a higher training error than plain-20: {yes(p56 > p20)} ({p56:.2f}% vs {p20:.2f}%)
- ResNet-56 ends at or below ResNet-20: {yes(r56 <= r20)} ({r56:.2f}% vs {r20:.2f}%)
- the ViT without skips trains at all (training error under half of chance, {half_chance:.0f}%): {vit_trains}
  ({vit_plain:.2f}%, against {vit:.2f}% with skips)
"""


def main(argv: list[str] | None = None) -> None:
    parser = kit.recipe_parser("degradation", __doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--epochs", type=PositiveInt, help="train this many epochs instead (e.g. 1 for a smoke test)")
    parser.add_argument("--only", nargs="+", help="labels to run, e.g. plain-20 ResNet-20 (default: all six)")
    parser.add_argument("--out", default="runs/degradation")
    args = kit.parse(parser, argv)

    preset = PRESETS[args.preset]
    recipe = replace(preset.recipe, epochs=args.epochs, max_steps=-1) if args.epochs else preset.recipe
    runs = [r for r in preset.runs() if not args.only or r.label in args.only]
    out = Path(args.out) / args.preset
    data = ImageDataModule(
        preset.source, image_size=preset.image_size, batch_size=preset.batch_size, augment=preset.augment,
        num_workers=preset.num_workers,
    )  # fmt: skip
    results = train_all(runs, recipe, data, out, "degradation", args.trainer)
    if not kit.is_global_zero():
        return
    curves = error_curves(results)
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
