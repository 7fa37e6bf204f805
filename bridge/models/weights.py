"""Weights in and out: one reader for every weights or checkpoint file, and timm/torchvision names both ways.

Our names differ from timm's only where :class:`~bridge.nn.Residual` adds a level (``branch``,
``shortcut``, the two halves of a Transformer block). Each model class lists the renames as prefix pairs
(``timm_key_rules``), read one way to import and the other way to export, and fits a state dict to itself
in ``adapt_state_dict`` (a ViT resamples its embeddings). Nothing here knows a model family.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bridge.errors import ConfigError, CorruptFileError, MissingFileError
from bridge.models.base import ZooModel

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pth", ".pt", ".bin")


class WeightsMismatchError(ConfigError):
    """The weights do not fit the architecture: the message lists what is missing, unexpected or mis-shaped."""


def load_file(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Everything in a ``.safetensors`` file or a torch file (``torch.save``: a state dict, a Lightning
    ``.ckpt`` with its ``state_dict`` and ``hyper_parameters``, a timm training checkpoint), as a dict.

    The format is read from the file's first bytes, not its name. Torch files load with
    ``weights_only=True``: tensors and plain containers only, no pickled code runs. A missing, empty,
    truncated, unsafe or foreign file raises a MissingFileError / CorruptFileError that says what to do.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"weights file {path} does not exist; check the path")
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        hint = f"it holds {', '.join(inside)}" if inside else "it holds no weights file"
        raise MissingFileError(f"{path} is a folder, not a weights file ({hint}); pass the file itself")
    size = path.stat().st_size
    if size == 0:
        raise CorruptFileError(f"{path} is empty (0 bytes): its saving or download was cut off; save or fetch it again")
    with path.open("rb") as f:
        head = f.read(9)
    kind = _sniff(head, size)
    if kind == "truncated-safetensors" or (path.suffix == ".safetensors" and kind == "unknown" and size < 9):
        raise _truncated(path, "the safetensors header runs past the end of the file")
    if path.suffix == ".safetensors" and kind != "safetensors":
        what = "a torch pickle file" if kind in ("zip", "pickle") else "no safetensors data"
        raise CorruptFileError(
            f"{path} is named .safetensors but holds {what}. A .safetensors name promises no pickled code: "
            "convert it with safetensors.torch.save_file(torch.load(old, weights_only=True), new), or, if it is "
            "a torch file you trust, name it .pth"
        )
    if kind == "safetensors":
        return _load_safetensors(path, map_location)
    if kind in ("zip", "pickle"):
        return _load_torch(path, kind, map_location)
    raise CorruptFileError(
        f"{path} is not a weights file: neither safetensors nor a torch checkpoint (it starts with {head[:8]!r}); "
        f"pass a {', '.join(WEIGHT_SUFFIXES)} file written by safetensors or torch.save"
    )


def _sniff(head: bytes, size: int) -> str:
    """ "zip" (torch.save), "pickle" (legacy torch.save), "safetensors", "truncated-safetensors" or "unknown"."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if len(head) == 9 and head[8:9] == b"{":  # an 8-byte little-endian header length, then the JSON header
        return "safetensors" if 8 + int.from_bytes(head[:8], "little") <= size else "truncated-safetensors"
    return "unknown"


def _truncated(path: Path, detail: str) -> CorruptFileError:
    return CorruptFileError(
        f"{path} is truncated or damaged ({detail}): its saving or download was cut off; save or fetch it again"
    )


def _load_safetensors(path: Path, map_location) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file as load_safetensors

    try:
        return load_safetensors(str(path), device=str(map_location))
    except SafetensorError as err:
        raise _truncated(path, str(err)) from None


def _load_torch(path: Path, kind: str, map_location) -> dict[str, Any]:
    if kind == "zip" and not zipfile.is_zipfile(path):
        raise _truncated(path, "the zip archive has no central directory")
    if kind == "zip" and not any(n.endswith("data.pkl") for n in zipfile.ZipFile(path).namelist()):
        raise CorruptFileError(
            f"{path} is a zip archive but not a torch checkpoint (no data.pkl inside); pass a file written by "
            "torch.save or safetensors"
        )
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        culprit = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        raise CorruptFileError(
            f"refusing to load {path}: it holds pickled objects that would run code when loaded"
            + (f" ({culprit.group(1)})" if culprit else "")
            + ", not plain tensors. Re-save it as .safetensors or as a plain state dict, in an environment you trust"
        ) from None
    except (EOFError, RuntimeError) as err:
        raise _truncated(path, str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    if not isinstance(content, Mapping):
        raise CorruptFileError(
            f"{path} holds a {type(content).__name__}, not a dict of tensors; save model.state_dict() instead"
        )
    return dict(content)


def read_state_dict(source: str | Path | Mapping[str, Tensor] | nn.Module) -> dict[str, Tensor]:
    """The tensors of a module, a mapping or a file (see :func:`load_file`), unwrapped from a Lightning
    (``state_dict``) or timm (``model``) checkpoint and from DDP's ``module.`` prefix."""
    if isinstance(source, nn.Module):
        return dict(source.state_dict())
    path = None
    if isinstance(source, (str, Path)):
        path, source = source, load_file(source)
    if not isinstance(source, Mapping):
        raise ConfigError(f"expected a module, a state dict or a weights file, got {type(source).__name__}")
    for wrapper in ("state_dict", "model"):  # Lightning checkpoints, timm training checkpoints
        if isinstance(source.get(wrapper), Mapping):
            source = source[wrapper]
    state = {k.removeprefix("module."): v for k, v in source.items() if isinstance(v, Tensor)}
    if path is not None and not state:
        raise CorruptFileError(
            f"{path} holds no tensors (keys: {', '.join(map(str, list(source)[:8]))}); "
            "pass a state dict or a checkpoint of a model"
        )
    return state


def _compile(template: str) -> re.Pattern:
    return re.compile("^" + r"(\d+)".join(re.escape(part) for part in template.split("{}")))


def _renamer(rules: list[tuple[str, str]]):
    # The longest source prefix first, so "layer1.0.downsample." wins over "layer1.0.".
    compiled = [(_compile(src), dst) for src, dst in sorted(rules, key=lambda r: -len(r[0]))]

    def rename(key: str) -> str:
        for pattern, dst in compiled:
            if m := pattern.match(key):
                return dst.format(*m.groups()) + key[m.end() :]
        return key

    return rename


def import_weights(model: ZooModel, source, drop_head: bool = False) -> ZooModel:
    """Load timm, torchvision or bridge weights into ``model`` (in place) and return it.

    ``source`` is a module, a state dict or a file (see :func:`load_file`). The model fits them to itself
    (``adapt_state_dict``: a ViT built for another image or patch size resamples its embeddings as timm does).
    ``drop_head=True`` keeps the model's own (freshly initialised) classifier, e.g. for other ``num_classes``.
    """
    theirs = read_state_dict(source)
    ours = model.state_dict()
    to_ours = _renamer([(t, o) for o, t in model.timm_key_rules])
    # Our own names, timm's/torchvision's, or either inside an ImageClassifier checkpoint ("model." prefix):
    # take the reading that matches the most of the model's keys.
    unwrapped = {k.removeprefix("model."): v for k, v in theirs.items() if k.startswith("model.")}
    candidates = [sd for base in (theirs, unwrapped) for sd in (base, {to_ours(k): v for k, v in base.items()})]
    state = model.adapt_state_dict(max(candidates, key=lambda sd: len(sd.keys() & ours.keys())))
    if drop_head:
        head = model.head_name + "."
        state = {k: v for k, v in state.items() if not k.startswith(head)}
        ours = {k: v for k, v in ours.items() if not k.startswith(head)}
    check_fits(model, ours, state)
    check_finite(state, source if isinstance(source, (str, Path)) else "the weights")
    model.load_state_dict(state, strict=not drop_head)
    return model


def check_finite(state: Mapping[str, Tensor], source: object = "the weights") -> None:
    """Raise a CorruptFileError naming the tensors that hold NaN or inf: such weights only ever output NaN."""
    bad = [k for k, v in state.items() if isinstance(v, Tensor) and v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise CorruptFileError(
            f"NaN or inf values in {len(bad)} tensor(s) of {source} ({', '.join(bad[:4])}"
            + (", ..." if len(bad) > 4 else "")
            + "): the run diverged before it was saved. Use an earlier checkpoint, or retrain with a lower learning "
            "rate or gradient clipping"
        )


def export_weights(model: ZooModel) -> dict[str, Tensor]:
    """Our state dict under timm's names (torchvision's for AlexNet/VGG), loadable strictly into the twin."""
    to_theirs = _renamer(model.timm_key_rules)
    return {to_theirs(k): v for k, v in model.state_dict().items()}


def check_fits(model: nn.Module, ours: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> None:
    """Raise a WeightsMismatchError listing what is missing, unexpected or mis-shaped, before any copy."""
    missing = sorted(ours.keys() - state.keys())
    unexpected = sorted(state.keys() - ours.keys())
    misshaped = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(ours[k].shape)}"
        for k in sorted(ours.keys() & state.keys())
        if state[k].shape != ours[k].shape
    ]
    if missing or unexpected or misshaped:

        def listing(title: str, items: list[str]) -> str:
            shown = "\n    ".join(items[:12]) + (f"\n    ... and {len(items) - 12} more" if len(items) > 12 else "")
            return f"\n  {title} ({len(items)}):\n    {shown}" if items else ""

        raise WeightsMismatchError(
            f"these weights do not fit {type(model).__name__}:"
            + listing("missing", missing)
            + listing("unexpected", unexpected)
            + listing("mis-shaped", misshaped)
            + "\n  Check that the model name and its settings (num_classes, depth, widths) match the checkpoint;"
            " pass drop_head=True to keep a new classifier."
        )
