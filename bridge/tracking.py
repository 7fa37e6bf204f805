"""Weights & Biases mode: offline by default, so no account or network is needed (``wandb sync`` uploads later)."""

from __future__ import annotations

import netrc
import os


def wandb_offline() -> bool:
    """W&B runs offline unless asked to go online or a key is available (WANDB_MODE wins)."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode:
        return mode in ("offline", "dryrun", "disabled")
    if os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError):
        return True
