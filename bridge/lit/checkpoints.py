"""What a Lightning checkpoint holds, checked against what a command asks for before anything is built.

``python -m bridge test --config <a ResNet config> --ckpt_path <a LeNet checkpoint>`` is refused with a
message naming both models and the config to use, instead of failing later on a shape or testing nothing.
"""

from __future__ import annotations

from pathlib import Path

from bridge.errors import ConfigError, MissingFileError
from bridge.models import check_finite, load_file

LIGHTNING_NAMES = ("last", "best", "hpc", "registry")  # --ckpt_path values Lightning resolves itself


def held_by(checkpoint: dict) -> tuple[str, str] | None:
    """(LightningModule class name, what it was built of) for bridge's modules; None for any other."""
    hparams = checkpoint.get("hyper_parameters") or {}
    policy = checkpoint.get("policy_config") or hparams.get("policy")
    if isinstance(policy, dict):
        return "VLAPolicy", f"a policy with a {policy.get('encoder', '?')} encoder"
    if "model" in hparams:
        return "ImageClassifier", str(hparams["model"])
    return None


def describe(held: tuple[str, str]) -> str:
    kind, of = held
    return f"a VLAPolicy checkpoint ({of})" if kind == "VLAPolicy" else f"an ImageClassifier checkpoint of {of}"


def check_checkpoint(
    ckpt_path: str | Path, class_path: str | None = None, model: str | None = None
) -> tuple[str, str] | None:
    """Read ``ckpt_path`` safely and refuse it unless it holds the LightningModule ``class_path`` asks for (and,
    for a classifier, the ``model`` asked for); without ``class_path``, only that it loads safely with finite
    weights. Returns what it holds (see :func:`held_by`)."""
    path = Path(ckpt_path)
    if not path.exists():
        raise MissingFileError(
            f"checkpoint {path} does not exist; pass a run's checkpoint (runs/<name>/checkpoints/last.ckpt or "
            "best.ckpt), or --ckpt_path last to resume the run this config names"
        )
    checkpoint = load_file(path)  # a missing, empty, truncated or unsafe file is refused here, by name
    check_finite(checkpoint.get("state_dict") or {}, path)  # a diverged run's weights only ever output NaN
    held = held_by(checkpoint)
    asked = (class_path or "").rsplit(".", 1)[-1]
    if held is None or asked not in ("VLAPolicy", "ImageClassifier"):
        return held  # a module of the user's own: Lightning checks what it can
    config = path.parent.parent / "config.yaml"  # runs/<name>/checkpoints/x.ckpt -> runs/<name>/config.yaml
    trained_with = f"--config {config}" if config.is_file() else "--config <the config it was trained with>"
    if held[0] != asked:
        raise ConfigError(
            f"{path} is {describe(held)}, but the config builds {'an' if asked[0] in 'AEIOU' else 'a'} {asked}; pass "
            f"a checkpoint of that kind, or run this checkpoint with {trained_with}"
        )
    if asked == "ImageClassifier" and model is not None and model != held[1]:
        raise ConfigError(
            f"{path} is {describe(held)}, but the config asks for {model}; run it with {trained_with}, "
            f"or pass a {model} checkpoint"
        )
    return held
