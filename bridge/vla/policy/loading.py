"""One loader for a trained policy, a ``save_pretrained`` folder or a VLAPolicy ``.ckpt``, without Lightning.

A checkpoint is read as plain data (``weights_only=True``): the policy's configuration, its ``policy.``
weights, the tokenizer trained with it and the world's settings it was trained in.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from bridge.errors import ConfigError, MissingFileError
from bridge.models import load_file
from bridge.vla.policy.configuration import PolicyConfig
from bridge.vla.policy.language import wrap_tokenizer
from bridge.vla.policy.modeling import Policy

PREFIX = "policy."  # VLAPolicy holds the Policy as ``self.policy``


def load_policy(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Policy:
    """The trained policy at ``path`` (a ``save_pretrained`` folder or a VLAPolicy ``.ckpt``), in eval mode."""
    path = Path(path)
    if path.is_dir():
        return Policy.from_pretrained(path, map_location=map_location)
    if not path.exists():
        raise MissingFileError(
            f"checkpoint {path} does not exist; pass a VLA run's checkpoint (runs/<name>/checkpoints/*.ckpt) "
            "or a folder written by Policy.save_pretrained"
        )
    return policy_from_checkpoint(load_file(path, map_location="cpu"), path).to(map_location).eval()


def policy_from_checkpoint(checkpoint: dict, path: Path | str = "the checkpoint") -> Policy:
    """The Policy inside a VLAPolicy checkpoint's contents (as :func:`bridge.models.load_file` reads them)."""
    hparams = checkpoint.get("hyper_parameters") or {}
    saved = checkpoint.get("policy_config") or hparams.get("policy")
    if saved is None or "state_dict" not in checkpoint:
        kind = "not a VLAPolicy checkpoint"
        if "model" in hparams:
            kind = f"an ImageClassifier checkpoint of {hparams['model']}"
        raise ConfigError(f"{path} is {kind}; pass the checkpoint of a VLA run (runs/<name>/checkpoints/*.ckpt)")
    if "world_options" not in saved:
        raise ConfigError(
            f"{path} predates policies that record their world's world_options, so it cannot be evaluated in the "
            "world it was trained in; train it again with this bridge"
        )
    config = PolicyConfig.from_dict(saved, f"{path}'s policy configuration")
    tokenizer = wrap_tokenizer(checkpoint["tokenizer"]) if "tokenizer" in checkpoint else None
    policy = Policy(config, tokenizer=tokenizer, encoder_weights=False)
    state = {k.removeprefix(PREFIX): v for k, v in checkpoint["state_dict"].items() if k.startswith(PREFIX)}
    return policy.load_weights(state, path)
