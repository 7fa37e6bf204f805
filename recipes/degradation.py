"""The degradation problem, reproduced (He et al. 2015, Figures 1 and 6).

plain-20, plain-56, ResNet-20 and ResNet-56 train on the same data with the same recipe; so do two 12-block
ViTs, with and without their skip connections (the same ``Residual`` flag). Deeper plain networks reach a
*higher training error* than shallow ones: not overfitting, an optimisation failure that ``x + F(x)``
removes. Output: a Figure-6-style PNG, a Markdown table and one W&B run per model and seed, under
runs/degradation/. With ``--seeds 3`` or more each claim carries the seeds' bootstrap interval; one seed is one draw.

    python -m bridge run degradation [--preset cpu|paper] [--seeds 3] [--trainer.accelerator gpu --trainer.devices 4]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from jsonargparse.typing import PositiveInt

from bridge.analysis.bootstrap import compare
from bridge.analysis.plots import plot_error_curves
from bridge.analysis.tables import markdown_table
from bridge.data import ImageDataModule
from bridge.errors import ConfigError
from recipes import kit
from recipes.classifier_sweep import (
    Recipe,
    Result,
    Run,
    add_seed_arguments,
    error_curves,
    final_errors,
    seed_list,
    train_all,
)


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


def evidence(results: dict[str, list[Result]], a: str, b: str) -> str:
    """The interval of ``a``'s final training error minus ``b``'s over the seeds (paired by seed), when there are
    two seeds or more; the verdict reads only the interval."""
    if len(results[a]) < 2:
        return ""
    d = compare(a, final_errors(results[a]), b, final_errors(results[b])).difference
    verdict = "higher" if d.low > 0 else "lower" if d.high < 0 else "no detectable difference"
    return f"; over {len(results[a])} seeds {a} minus {b}: {d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}], {verdict}"


def report(results: dict[str, list[Result]], preset: str, num_classes: int) -> str:
    """Errors are means over the seeds; each claim's interval comes from :func:`evidence`."""
    final = {
        label: (final_errors(rs, "train").mean(), final_errors(rs, "test").mean()) for label, rs in results.items()
    }
    seeds = sorted({r.seed for rs in results.values() for r in rs})
    table = markdown_table(
        ["model", "params", "training error", "held-out error", "seconds"],
        [[label, f"{results[label][0].params:,}", f"{train:.2f}", f"{test:.2f}",
          f"{np.mean([r.seconds for r in results[label]]):.0f}"] for label, (train, test) in final.items()],
    )  # fmt: skip
    half_chance = 50.0 * (1 - 1 / num_classes)
    p20, p56, r20, r56 = (final[k][0] for k in ("plain-20", "plain-56", "ResNet-20", "ResNet-56"))
    vit, vit_plain = final["ViT-12"][0], final["ViT-12 no skip"][0]

    def yes(flag: bool) -> str:
        return "**yes**" if flag else "**no**"

    vit_trains = yes(vit_plain < half_chance)

    return f"""# Degradation, preset `{preset}`

Final errors in percent, means over the training seeds {", ".join(map(str, seeds))}: training error is the last
epoch's running error, held-out error the validation split.

{table}
- plain-56 ends with a higher training error than plain-20: {yes(p56 > p20)} ({p56:.2f}% vs {p20:.2f}%\
{evidence(results, "plain-56", "plain-20")})
- ResNet-56 ends at or below ResNet-20: {yes(r56 <= r20)} ({r56:.2f}% vs {r20:.2f}%\
{evidence(results, "ResNet-56", "ResNet-20")})
- the ViT without skips trains at all (training error under half of chance, {half_chance:.0f}%): {vit_trains}
  ({vit_plain:.2f}%, against {vit:.2f}% with skips)
"""


def main(argv: list[str] | None = None) -> None:
    parser = kit.recipe_parser("degradation", __doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--epochs", type=PositiveInt, help="train this many epochs instead (e.g. 1 for a smoke test)")
    parser.add_argument("--only", nargs="+", help="labels to run, e.g. plain-20 ResNet-20 (default: all six)")
    parser.add_argument("--out", default="runs/degradation")
    add_seed_arguments(parser)
    args = kit.parse(parser, argv)
    kit.out_folder(args.out)
    preset = PRESETS[args.preset]
    labels = [r.label for r in preset.runs()]
    unknown = sorted(set(args.only or []) - set(labels))
    if unknown:
        raise ConfigError(f"--only {', '.join(unknown)}: no such run; the runs are {', '.join(labels)}")
    recipe = replace(preset.recipe, epochs=args.epochs, max_steps=-1) if args.epochs else preset.recipe
    runs = [r for r in preset.runs() if not args.only or r.label in args.only]
    out = Path(args.out) / args.preset
    data = ImageDataModule(
        preset.source, image_size=preset.image_size, batch_size=preset.batch_size, augment=preset.augment,
        num_workers=preset.num_workers,
    )  # fmt: skip
    results = train_all(runs, recipe, data, out, f"degradation-{args.preset}", args.trainer, seed_list(args))
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
