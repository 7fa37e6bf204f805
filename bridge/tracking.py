"""Where and how every W&B run goes: project, entity and mode, read once from wandb's own variables.

Offline by default, so no account or network is needed (``wandb sync`` uploads later); online when the user
asks (``WANDB_MODE=online``) or has a key; ``WANDB_MODE=disabled`` writes nothing. ``WANDB_PROJECT`` and
``WANDB_ENTITY`` are honoured; "bridge" is only the default project.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from urllib.parse import urlsplit

from bridge.errors import ConfigError

PROJECT = "bridge"
DEFAULT_BASE_URL = "https://api.wandb.ai"


def wandb_settings() -> dict:
    """``project``, ``entity`` and ``mode`` for ``wandb.init`` (and Lightning's WandbLogger), the same for every
    run. Refused up front, before any work, when ``WANDB_MODE=online`` has no key to go online with."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode == "dryrun":  # wandb's old name for offline
        mode = "offline"
    if mode not in ("", "online", "offline", "disabled"):
        raise ConfigError(f"WANDB_MODE={mode} is not a W&B mode; use online, offline or disabled")
    if not mode:
        mode = "online" if has_key() else "offline"
    elif mode == "online" and not has_key():
        raise ConfigError(
            f"WANDB_MODE=online, but there is no W&B key for {base_url()}; run `wandb login` (or set WANDB_API_KEY), "
            "or use WANDB_MODE=offline and `wandb sync` later"
        )
    return {"project": os.environ.get("WANDB_PROJECT") or PROJECT, "entity": os.environ.get("WANDB_ENTITY") or None,
            "mode": mode}  # fmt: skip


def base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL


def has_key() -> bool:
    """Whether a key is there for the server runs go to (``WANDB_BASE_URL``, a self-hosted one too).

    wandb's own lookup (``wandb.sdk.lib.wbauth``) is private API, so this reads the same places it does: the
    ``WANDB_API_KEY`` variable, then the netrc file (``NETRC`` or ~/.netrc) for the server's host. No network.
    """
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(base_url()).netloc
    path = os.environ.get("NETRC") or Path.home() / ".netrc"
    try:
        return bool(host) and netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False
