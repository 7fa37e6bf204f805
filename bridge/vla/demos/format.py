"""The demo set on disk: a ``Dataset.save_to_disk`` folder and ``meta.json``, with LeRobot's column names.

``meta.json`` (LeRobot's meta/info.json and stats.json in one) holds the format's version, the world's name and
options, its observation and action specs, how the demos were collected, and the statistics the policy normalises
with. Columns: ``observation.image`` (PNG), ``observation.state`` (when the world has a state vector), ``action``,
``task``, ``episode_index``, ``frame_index``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from datasets import Dataset, Features, Image, List, Value, load_from_disk

from bridge.errors import ConfigError, CorruptFileError, MissingFileError
from bridge.runs import check_writable, folder_kind, replace_folder
from bridge.vla.worlds import ActionSpace, ObservationSpec

META_FILE = "meta.json"
DEMOS = "demos"  # the kind bridge marks a demo set's folder with (bridge.runs)
FORMAT_VERSION = 2  # 2: the world's settings under "world_options"


def demo_features(observation: ObservationSpec, action_space: ActionSpace) -> Features:
    """The demo set's columns for a world with these specs (LeRobot's key names)."""
    features = {"observation.image": Image()}
    if observation.state_dim:
        features["observation.state"] = List(Value("float32"), length=observation.state_dim)
    if action_space.kind == "box":
        features["action"] = List(Value("float32"), length=action_space.size)
    else:
        features["action"] = Value("int64")
    features.update(task=Value("string"), episode_index=Value("int64"), frame_index=Value("int64"))
    return Features(features)


def save_demos(dataset: Dataset, meta: dict, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the set to a temporary folder, then rename it into place: a crash never leaves half a set at ``path``.

    ``overwrite`` replaces an earlier demo set only; a folder holding anything else is always refused.
    """
    path = Path(path)
    if len(dataset) == 0:
        raise ConfigError("refusing to save an empty demo set")
    check_writable(path, DEMOS, overwrite)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dataset.save_to_disk(str(tmp))
    (tmp / META_FILE).write_text(json.dumps({**meta, "format_version": FORMAT_VERSION}, indent=2))
    return replace_folder(tmp, path, DEMOS)


def load_demos(path: str | os.PathLike) -> tuple[Dataset, dict]:
    """A demo set saved by :func:`save_demos`, checked: present, readable, of this format's version, non-empty,
    with LeRobot's columns."""
    path = Path(path)
    hint = collect_hint(path)
    if not path.is_dir():
        raise MissingFileError(f"no demo set at {path}; {hint}")
    try:
        meta = json.loads((path / META_FILE).read_text())
        dataset = load_from_disk(str(path))
    except (OSError, ValueError, KeyError, IndexError) as err:  # json, datasets and pyarrow on a damaged folder
        raise CorruptFileError(
            f"the demo set at {path} is missing files or corrupted ({type(err).__name__}: {err}); {hint}"
        ) from None
    if not isinstance(dataset, Dataset):
        raise CorruptFileError(f"{path} holds a {type(dataset).__name__}, not one demo Dataset; {hint}")
    if isinstance(meta, dict) and "stats" in meta and meta.get("format_version") != FORMAT_VERSION:
        raise CorruptFileError(
            f"the demo set at {path} is of format version {meta.get('format_version', 1)}, this bridge reads "
            f"version {FORMAT_VERSION}; {hint}"
        )
    if not isinstance(meta, dict) or not {"stats", "world", "world_options"} <= set(meta):
        raise CorruptFileError(f"{path}/{META_FILE} does not describe a demo set; {hint}")
    features = demo_features(ObservationSpec(**meta["observation"]), ActionSpace(**meta["action_space"]))
    missing = [name for name in features if name not in dataset.column_names]
    if missing:
        raise CorruptFileError(f"the demo set at {path} lacks the columns {missing}; {hint}")
    if len(dataset) == 0:
        raise CorruptFileError(f"the demo set at {path} is empty; {hint}")
    return dataset, meta


def collect_hint(path: Path) -> str:
    """How to (re)collect the set at ``path``; never --overwrite for a folder bridge did not write."""
    if folder_kind(path) == DEMOS:
        return f"collect it again: python -m bridge vla collect --episodes N --out {path} --overwrite"
    if path.is_dir() and any(path.iterdir()):
        return f"{path} holds other files; collect the demos into another folder and point to it"
    return f"collect it: python -m bridge vla collect --episodes N --out {path}"
