"""The lineage's budgets (presets) and the policies it compares (arms): what is trained, on how much."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentError, ArgumentParser

from bridge.errors import ConfigError
from bridge.vla.policy.configuration import ImageTokens
from bridge.vla.worlds import World, get_world

# The trunk and head of configs/vla_resnet.yaml: FiLM conditioning, two Residual Transformer blocks over the image's
# grid of tokens, L1 head. A preset may change the blocks and the image's tokens (trunk_depth, image_tokens).
TRUNK = {"conditioning": "film", "dim": 64, "depth": 2, "num_heads": 4, "image_tokens": "grid", "head": "continuous"}
LR, WARMUP = 2e-3, 100  # AdamW for every policy: only the encoder and its first weights differ


# The world whose objects the shapes data set draws: pretraining on shapes serves its policies only.
PRETRAINING_WORLD = "reach"


@dataclass(frozen=True)
class Preset:
    world: str = PRETRAINING_WORLD  # where the policies act, e.g. babyai:GoToRedBall
    image_size: int = 64  # the world's frames where it lets them be sized (Reach), and the pretraining images
    shapes: tuple[int, int, int] = (3000, 300, 300)  # pretraining images (train, validation, test)
    pretrain_epochs: int = 3
    pretrain_vit: bool = True
    hybrid: bool = False  # the shapes-pretrained ResNet's stages as the patch embedding of the ViT's blocks
    resnet_widths: tuple[int, int] = (16, 32)  # the ResNet's two stages
    vit_width: int = 192  # timm's ViT-Tiny; MACs go with the width squared
    episodes: int = 1000  # expert demonstrations
    steps: int = 250  # optimiser steps per policy
    batch_size: int = 64
    lr: float = LR
    trunk_depth: int = TRUNK["depth"]  # the policy's Transformer blocks
    image_tokens: ImageTokens = TRUNK["image_tokens"]  # a frame's tokens in the trunk
    head: str = TRUNK["head"]  # continuous (L1) or bins, in a world of continuous actions
    bin_sigma: float = 0.0  # bins: the width of HL-Gauss targets in bins (0: one-hot)
    eval_episodes: int = 50  # per evaluation seed
    eval_seeds: int = 2
    curve_episodes: int | None = None  # per evaluation seed at the curve points before the last (None: eval_episodes)
    seeds: int = 3  # training runs per arm (seed, seed + 1, ...): a verdict needs the spread between runs
    curve_points: int = 4  # closed-loop evaluations along each policy's training, the last at the end
    arms: tuple[str, ...] = ()  # the labels of the policies to train (see arms()); empty: every one
    timm: str = "timm:resnet18"  # weights are used when they are in the local Hugging Face cache
    num_workers: int = 0
    parallel: int = 1  # training runs side by side, one torch thread each (pool.py); 1: one at a time
    trainer: dict[str, Any] = field(default_factory=dict)  # Trainer settings; the command line's --trainer.* win


PRESETS = {
    # The README demo (make demo), sized for 10 minutes on 2 CPU cores with the set-up: the ResNet and the ViT, each
    # pretrained on shapes and fine-tuned and from scratch, three seeds each, so that its answer comes with the
    # spread between runs. What buys success per second (benchmarks/README.md, success per FLOP): each frame as
    # its keypoints (where things are) instead of 8x8 grid tokens, one trunk block instead of two, and batches of
    # 32, twice the steps of batches of 64 for the same frames. Its cuts: the curve's first points on half the
    # evaluation episodes, and the runs two at a time with one thread each (pool.py). Pretraining keeps the full
    # size: fewer images end inside the warm-up, before the classifier has learnt the shapes.
    "tiny": Preset(
        steps=800, batch_size=32, trunk_depth=1, image_tokens="keypoints", curve_episodes=25, parallel=2,
        timm="timm:mobilenetv3_small_100", vit_width=48,
        arms=("ResNet fine-tuned", "ResNet scratch", "ViT fine-tuned", "ViT scratch"),
    ),
    # Sharper numbers on a CPU: the budget of configs/vla_resnet.yaml, every arm.
    "cpu": Preset(
        shapes=(6000, 1200, 1200), pretrain_epochs=5, episodes=5000, steps=2000, eval_seeds=3, vit_width=48,
        hybrid=True,
    ),
    # The comparison on BabyAI's GoToRedBall: the field's FiLM-CNN, ResNet and ViT, all from scratch (the shapes are
    # Reach's objects), three seeds each, two runs side by side.
    "babyai": Preset(
        world="babyai:GoToRedBall", episodes=5000, steps=400, vit_width=96, eval_episodes=100, curve_episodes=25,
        parallel=2,
    ),
    # One or more GPUs, in bf16: the ResNet at ResNet-18's first two widths against ViT-Tiny's width, matched in
    # MACs a frame (tests/test_lineage.py holds them to 1.5x).
    "gpu": Preset(
        shapes=(24000, 2400, 2400), pretrain_epochs=10, episodes=20000, steps=10000, batch_size=256,
        eval_episodes=100, eval_seeds=3, num_workers=4, resnet_widths=(64, 128), trainer={"precision": "bf16-mixed"},
        hybrid=True,
    ),
}  # fmt: skip


# --smoke: every stage of a preset on a handful of examples, with its models, arms and Trainer settings (the gpu
# preset's bf16 included), to check a preset on a small machine before paying for its budget.
SMOKE = {"shapes": (48, 12, 12), "pretrain_epochs": 1, "episodes": 8, "steps": 2, "batch_size": 8, "eval_episodes": 2,
         "eval_seeds": 1, "curve_episodes": None, "curve_points": 1, "seeds": 1, "num_workers": 0}  # fmt: skip


@dataclass(frozen=True)
class Arm:
    """One policy to train: its encoder and where the encoder's first weights come from."""

    label: str
    encoder: str
    kwargs: dict
    init: str  # what the table says: scratch, pretrained on shapes, timm weights
    weights: str | None = None  # a pretraining stage's name, or a weights file
    freeze: bool = False


FILM_CNN = "FiLM-CNN (BabyAI 1.1)"  # the grid-world field's reference encoder, an arm outside Reach


def resnet(widths: tuple[int, int] = (16, 32)) -> tuple[str, dict]:
    """ResNet-20's basic blocks behind the ImageNet stem, two stages: a 64x64 frame becomes 8x8 tokens."""
    return "resnet20", {"stem": "imagenet", "layers": [3, 3], "widths": list(widths)}


RESNET = resnet()


def vit(size: int, width: int = 192, patch_size: int | None = None) -> tuple[str, dict]:
    """The minimal ViT, four blocks over a grid of patches (8x8 by default); width 192 is timm's ViT-Tiny (its
    weights load)."""
    return "vit_tiny_patch16_224", {"img_size": size, "patch_size": patch_size or size // 8, "depth": 4,
                                    "embed_dim": width}  # fmt: skip


def hybrid(preset: Preset) -> tuple[str, dict]:
    """The preset's ResNet under the preset's ViT blocks (bridge.models.hybrid): the same stages, the same width."""
    _, kwargs = resnet(preset.resnet_widths)
    return "resnet_vit", {"img_size": preset.image_size, "resnet": kwargs, "embed_dim": preset.vit_width, "depth": 4}


def make_world(preset: Preset) -> World:
    """The world the preset's policies act in, its frames sized by the preset where the world lets them be."""
    world = get_world(preset.world)
    return world.replace(image_size=preset.image_size) if "image_size" in world.options else world


def trunk(preset: Preset) -> dict:
    """The policy's fields every arm of a preset shares: TRUNK with the preset's blocks, image tokens and head."""
    return {**TRUNK, "depth": preset.trunk_depth, "image_tokens": preset.image_tokens, "head": preset.head,
            "bin_sigma": preset.bin_sigma}  # fmt: skip


def policy_settings(preset: Preset) -> dict:
    """The policy's fields its world decides (name, options, frame side, head) and the preset's trunk; the preset's
    head in a world of continuous actions (a discrete one takes the categorical head)."""
    world = make_world(preset)
    head = preset.head if world.action_space.kind == "box" else "categorical"
    return {"world": world.name, "world_options": world.options, "image_size": world.observation.image_size,
            **trunk(preset), "head": head}  # fmt: skip


def arms(preset: Preset, vit_weights: str | None, timm_weights: str | None) -> list[Arm]:
    r, v = resnet(preset.resnet_widths), vit(preset.image_size, preset.vit_width)
    if preset.world != PRETRAINING_WORLD:
        # Elsewhere every encoder starts from scratch, beside the grid-world field's own FiLM-CNN; the ViT's 8x8
        # patches are BabyAI's cells.
        size = make_world(preset).observation.image_size
        result = [
            Arm(FILM_CNN, "babyai_film_cnn", {}, "scratch"),
            Arm("ResNet scratch", *r, "scratch"),
            Arm("ViT scratch", *vit(size, preset.vit_width, patch_size=8), "scratch"),
        ]
        return [arm for arm in result if not preset.arms or arm.label in preset.arms]
    result = [
        Arm("ResNet frozen", *r, "pretrained on shapes", "pretrain-resnet", freeze=True),
        Arm("ResNet fine-tuned", *r, "pretrained on shapes", "pretrain-resnet"),
        Arm("ResNet scratch", *r, "scratch"),
        Arm("ViT scratch", *v, "scratch"),
    ]
    if preset.pretrain_vit:
        result.append(Arm("ViT fine-tuned", *v, "pretrained on shapes", "pretrain-vit"))
    if preset.hybrid:
        result.append(Arm("Hybrid fine-tuned", *hybrid(preset), "ResNet pretrained on shapes", "pretrain-resnet"))
    if vit_weights:
        result.append(Arm("ViT-Tiny timm weights", *vit(preset.image_size), "timm weights (resampled)", vit_weights))
    timm_init = "timm weights" if timm_weights else "scratch (no weights on disk)"
    name = preset.timm.removeprefix("timm:")  # timm's model always: "resnet18" alone is also bridge's own ResNet-18
    result.append(Arm(name, f"timm:{name}", {}, timm_init, timm_weights))
    return [arm for arm in result if not preset.arms or arm.label in preset.arms]


def cached_timm_weights(name: str) -> str | None:
    """The local Hugging Face cache's weights file for a timm model, or None: the recipe never downloads."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name.removeprefix("timm:"))
    if cfg is None or not cfg.hf_hub_id:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        path = try_to_load_from_cache(cfg.hf_hub_id, filename)
        if isinstance(path, str):
            return path
    return None


def load_preset(name_or_file: str) -> tuple[str, Preset]:
    """``--preset``: a preset's name, or a YAML file of Preset fields on top of a ``base`` preset (tiny by default),
    every field typed and checked by jsonargparse from the dataclass. Returns the run's name and the preset."""
    if name_or_file in PRESETS:
        return name_or_file, PRESETS[name_or_file]
    path = Path(name_or_file)
    usage = f"choose {', '.join(sorted(PRESETS))}, or a YAML file of Preset fields, e.g. base: tiny and vit_width: 96"
    if not path.is_file():
        raise ConfigError(f"--preset {name_or_file}: no preset of that name and no such file; {usage}")
    try:
        given = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"--preset {path}: not readable YAML ({type(err).__name__}); {usage}") from None
    if not isinstance(given, dict):
        raise ConfigError(f"--preset {path}: holds a {type(given).__name__}, not a mapping of fields; {usage}")
    base = given.pop("base", "tiny")
    if base not in PRESETS:
        raise ConfigError(f"--preset {path}: base {base!r} is not a preset; choose {', '.join(sorted(PRESETS))}")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(Preset, "preset")
    try:
        parsed = parser.parse_object({"preset": {**asdict(PRESETS[base]), **given}}).preset
    except ArgumentError as err:
        known = ", ".join(f.name for f in fields(Preset))
        raise ConfigError(f"--preset {path}: {' '.join(str(err).split())}; the fields are {known}") from None
    preset = Preset(**vars(parsed))
    check_ranges(preset, f"--preset {path}")
    return path.stem, preset


# Fields that count something, and the least each may be: checked here, before a DataModule or a Trainer refuses
# them in the words of a fit config (data.init_args...), which the lineage has not.
LEAST = {"image_size": 16, "pretrain_epochs": 1, "vit_width": 1, "episodes": 1, "steps": 1, "batch_size": 1,
         "eval_episodes": 1, "eval_seeds": 1, "curve_episodes": 1, "seeds": 1, "curve_points": 1, "num_workers": 0,
         "parallel": 1, "shapes": 1, "resnet_widths": 1, "trunk_depth": 1}  # fmt: skip


def check_ranges(preset: Preset, source: str) -> None:
    """Refuse a preset field below its least value (see LEAST), an image size the ViT cannot cut or a rate <= 0."""
    for name, least in LEAST.items():
        value = getattr(preset, name)
        values = value if isinstance(value, tuple) else (value,)
        if any(v is not None and v < least for v in values):
            raise ConfigError(f"{source}: {name} must be {least} or more, got {value}; set {name} in the file")
    if preset.image_size % 8:
        raise ConfigError(
            f"{source}: image_size must be a multiple of 8 (the ViT cuts 8x8 patches), got {preset.image_size}"
        )
    if not preset.lr > 0 or preset.bin_sigma < 0:
        raise ConfigError(
            f"{source}: lr must be above 0 and bin_sigma 0 or more, got {preset.lr} and {preset.bin_sigma}"
        )
