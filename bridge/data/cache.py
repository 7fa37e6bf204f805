"""Where the datasets cache lives."""

from __future__ import annotations

import os
from pathlib import Path

import datasets


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$HF_DATASETS_CACHE`` read now, else datasets' default.

    ``datasets`` reads the variable once at import; reading it here as well means a value set later
    (a test's monkeypatch, a notebook cell) still counts.
    """
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("HF_DATASETS_CACHE", datasets.config.HF_DATASETS_CACHE))
