"""The demo set on disk: LeRobot's v3 dataset layout, written and read with pyarrow (no LeRobot import).

A set is a folder that ``LeRobotDataset(repo_id, root=folder)`` opens offline:

* ``meta/info.json``: ``codebase_version`` "v3.0", ``fps``, the totals, path templates and ``features`` (dtype,
  shape, names of each column). Bridge's own metadata (format version, the world's name and options, its
  observation and action specs, how the demos were collected) travels under its ``"bridge"`` key, which LeRobot
  ignores; a set LeRobot wrote has none, and then the reader names the world (:class:`DemoDataModule`).
* ``meta/stats.json``: min, max, mean, std and count of every feature; the policy normalises with them.
* ``meta/tasks.parquet`` (each instruction's ``task_index``) and ``meta/episodes/chunk-000/file-000.parquet``
  (each episode's length, tasks, data file and rows).
* ``data/chunk-XXX/file-XXX.parquet``: one row per frame, ``observation.image`` (PNG bytes, LeRobot's image
  dtype, so no video decoding), ``observation.state`` (when the world has one), ``action``, ``timestamp``,
  ``frame_index``, ``episode_index``, ``index`` and ``task_index``.

:func:`load_demos` serves any such set as one ``datasets.Dataset`` of the columns in :func:`demo_features`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Dataset, Features, Image, List, Value
from datasets.table import table_cast

from bridge.errors import ConfigError, CorruptFileError, MissingFileError
from bridge.runs import check_writable, folder_kind, replace_folder
from bridge.vla.worlds import ActionSpace, ObservationSpec

DEMOS = "demos"  # the kind bridge marks a demo set's folder with (bridge.runs)
FORMAT_VERSION = 3  # 3: LeRobot's v3 layout, bridge's metadata under info.json's "bridge"
CODEBASE_VERSION = "v3.0"
INFO, STATS, TASKS = "meta/info.json", "meta/stats.json", "meta/tasks.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
CHUNKS_SIZE = 1000  # files per chunk folder, and a data file's size cap below: LeRobot's defaults
DATA_FILE_MB = 100
IMAGE_STATS_FRAMES = 1000  # image statistics are estimated on this many frames spread over the set, as LeRobot does
FRAME_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def demo_features(observation: ObservationSpec, action_space: ActionSpace) -> Features:
    """The columns :func:`load_demos` serves for a world with these specs (LeRobot's key names)."""
    features = {"observation.image": Image()}
    if observation.state_dim:
        features["observation.state"] = List(Value("float32"), length=observation.state_dim)
    if action_space.kind == "box":
        features["action"] = List(Value("float32"), length=action_space.size)
    else:
        features["action"] = Value("int64")
    features.update(task=Value("string"), episode_index=Value("int64"), frame_index=Value("int64"))
    return Features(features)


def lerobot_features(observation: ObservationSpec, action_space: ActionSpace) -> dict:
    """info.json's ``features`` of a world's demo set (the frame columns included), as LeRobot writes them."""
    s = observation.image_size
    features = {"observation.image": {"dtype": "image", "shape": [s, s, 3], "names": ["height", "width", "channel"]}}
    if observation.state_dim:
        features["observation.state"] = {"dtype": "float32", "shape": [observation.state_dim], "names": None}
    if action_space.kind == "box":
        features["action"] = {"dtype": "float32", "shape": [action_space.size], "names": None}
    else:
        features["action"] = {"dtype": "int64", "shape": [1], "names": None}
    for name in FRAME_COLUMNS:
        features[name] = {"dtype": "float32" if name == "timestamp" else "int64", "shape": [1], "names": None}
    return features


def _hf_features(features: dict) -> Features:
    """The ``datasets`` types of info.json's features (LeRobot's mapping: a shape of (1,) is a scalar)."""
    hf = {}
    for name, ft in features.items():
        if ft["dtype"] == "image":
            hf[name] = Image()
        elif list(ft["shape"]) == [1]:
            hf[name] = Value(ft["dtype"])
        elif len(ft["shape"]) == 1:
            hf[name] = List(Value(ft["dtype"]), length=ft["shape"][0])
        else:
            raise ValueError(f"feature {name} of shape {ft['shape']}: bridge reads images, vectors and scalars")
    return Features(hf)


def save_demos(dataset: Dataset, meta: dict, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``dataset`` (the columns of :func:`demo_features`, episodes in order) and ``meta`` (from
    :func:`~bridge.vla.demos.collect.collect_demos`) as a LeRobot v3 set at ``path``.

    The set is written to a temporary folder, then renamed into place: a crash never leaves half a set at ``path``.
    ``overwrite`` replaces an earlier demo set only; a folder holding anything else is always refused.
    """
    path = Path(path)
    if len(dataset) == 0:
        raise ConfigError("refusing to save an empty demo set")
    check_writable(path, DEMOS, overwrite)
    observation, action_space = ObservationSpec(**meta["observation"]), ActionSpace(**meta["action_space"])
    features = lerobot_features(observation, action_space)
    missing = [name for name in demo_features(observation, action_space) if name not in dataset.column_names]
    if missing:
        raise ConfigError(f"the demo set to save lacks the columns {missing}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "meta/episodes/chunk-000").mkdir(parents=True)

    frames = dataset.with_format("arrow")[:]
    tasks = list(dict.fromkeys(frames["task"].to_pylist()))  # in order of first appearance, as LeRobot numbers them
    frame_columns = {
        "timestamp": pa.array(frames["frame_index"].to_numpy() / meta["fps"], pa.float32()),
        "frame_index": frames["frame_index"],
        "episode_index": frames["episode_index"],
        "index": pa.array(np.arange(len(frames)), pa.int64()),
        "task_index": pc.index_in(frames["task"], pa.array(tasks)).cast(pa.int64()),
    }
    columns = {name: frames[name] if name in frames.column_names else frame_columns[name] for name in features}
    for name in ("observation.state", "action"):  # LeRobot stores a shape of (1,) as a scalar
        if name in columns and pa.types.is_fixed_size_list(columns[name].type) and features[name]["shape"] == [1]:
            columns[name] = pc.list_flatten(columns[name])
    table = pa.table(columns)
    table = table_cast(table, _hf_features(features).arrow_schema)  # the schema carries the `datasets` features
    episodes = _write_data(table, tmp, tasks)

    pd.DataFrame({"task_index": range(len(tasks))}, index=pd.Index(tasks, name="task")).to_parquet(tmp / TASKS)
    pq.write_table(pa.Table.from_pylist(episodes), tmp / EPISODES)
    (tmp / STATS).write_text(json.dumps(feature_stats(table, features), indent=2))
    bridge_meta = {key: meta[key] for key in meta if key not in ("fps", "num_episodes", "num_frames", "stats")}
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": None,
        "total_episodes": len(episodes),
        "total_frames": len(table),
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILE_MB,
        "fps": meta["fps"],
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH,
        "video_path": None,
        "features": features,
        "bridge": {"format_version": FORMAT_VERSION, **bridge_meta},
    }
    (tmp / INFO).write_text(json.dumps(info, indent=2))
    return replace_folder(tmp, path, DEMOS)


def _write_data(table: pa.Table, root: Path, tasks: list[str]) -> list[dict]:
    """The frames in data files of at most DATA_FILE_MB, each episode whole in one; the episodes' index rows."""
    episode_index = table["episode_index"].to_numpy()
    if (np.diff(episode_index) < 0).any():
        raise ConfigError("the demo set to save must hold its episodes in order, each episode's frames together")
    starts = np.flatnonzero(np.r_[True, np.diff(episode_index) != 0])
    ends = np.r_[starts[1:], len(table)]
    task_index = table["task_index"].to_numpy()
    episodes, file, first, size = [], 0, 0, 0

    def flush(stop: int) -> None:
        out = root / DATA_PATH.format(chunk_index=file // CHUNKS_SIZE, file_index=file % CHUNKS_SIZE)
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(first, stop - first), out)

    for start, end in zip(starts.tolist(), ends.tolist()):
        rows = table.slice(start, end - start).nbytes
        if size and size + rows > DATA_FILE_MB * 2**20:
            flush(start)
            file, first, size = file + 1, start, 0
        size += rows
        episodes.append(
            {
                "episode_index": int(episode_index[start]),
                "tasks": [tasks[i] for i in dict.fromkeys(task_index[start:end].tolist())],
                "length": end - start,
                "data/chunk_index": file // CHUNKS_SIZE,
                "data/file_index": file % CHUNKS_SIZE,
                "dataset_from_index": start,
                "dataset_to_index": end,
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
            }
        )
    flush(len(table))
    return episodes


def feature_stats(table: pa.Table, features: dict) -> dict:
    """stats.json: per-dimension min, max, mean and std (and the count) of every feature, as LeRobot keeps them.

    Images are per channel in [0, 1] with LeRobot's (3, 1, 1) shape, estimated on IMAGE_STATS_FRAMES frames.
    """
    stats = {}
    for name, ft in features.items():
        if ft["dtype"] == "image":
            rows = np.unique(np.linspace(0, len(table) - 1, min(len(table), IMAGE_STATS_FRAMES)).round().astype(int))
            sample = Dataset(table.select([name]).take(rows)).with_format("numpy")[name]  # decodes the PNGs
            v, shape = np.stack(sample).reshape(-1, 3).astype(np.float64) / 255, (3, 1, 1)
        else:
            v, shape = np.asarray(table[name].to_pylist(), dtype=np.float64).reshape(len(table), -1), (-1,)
        stats[name] = {key: getattr(v, key)(0).reshape(shape).tolist() for key in ("min", "max", "mean", "std")}
        stats[name]["count"] = [len(table)]
    return stats


def load_demos(
    path: str | os.PathLike, world: str | None = None, world_options: dict | None = None
) -> tuple[Dataset, dict]:
    """The LeRobot v3 set at ``path`` (bridge's or LeRobot's own), checked, as the columns of :func:`demo_features`
    and its ``meta``: ``fps``, ``num_episodes``, ``num_frames``, ``stats``, ``features`` (info.json's, of the
    columns served) and, for a set bridge wrote, its metadata (``world``, ``world_options``, ``observation``,
    ``action_space``, ``expert``, ...). A set with one camera under another key serves it as ``observation.image``.
    ``world`` and ``world_options``, those the set should be of, go into the hint for collecting it again.
    """
    path = Path(path)
    hint = collect_hint(path, world, world_options)
    if not path.is_dir():
        raise MissingFileError(f"no demo set at {path}; {hint}")
    if not (path / INFO).exists() and (path / "meta.json").exists():
        raise CorruptFileError(
            f"the demo set at {path} is in the format of an earlier bridge (Dataset.save_to_disk and meta.json); "
            f"bridge now reads LeRobot's v3 layout; {hint}"
        )
    try:
        info = json.loads((path / INFO).read_text())
        stats = json.loads((path / STATS).read_text())
        names = pd.read_parquet(path / TASKS)
        files = sorted((path / "data").glob("*/*.parquet"))
        table = pa.concat_tables([pq.read_table(f) for f in files]) if files else None
    except (OSError, ValueError, pa.ArrowException) as err:  # json, pandas and pyarrow on a damaged folder
        raise CorruptFileError(
            f"the demo set at {path} is missing files or corrupted ({type(err).__name__}: {err}); it must be a LeRobot "
            f"v3 dataset (meta/info.json, meta/stats.json, meta/tasks.parquet, data/); {hint}"
        ) from None
    if not isinstance(info, dict) or not isinstance(info.get("features"), dict) or "fps" not in info:
        raise CorruptFileError(f"{path}/{INFO} does not describe a LeRobot dataset (no features or fps); {hint}")
    if not isinstance(stats, dict):
        raise CorruptFileError(f"{path}/{STATS} does not hold a LeRobot dataset's statistics; {hint}")
    version = str(info.get("codebase_version", "?"))
    if not version.startswith("v3."):
        raise CorruptFileError(
            f"the dataset at {path} is LeRobot {version}; bridge reads v3 sets. Convert it with LeRobot's "
            "python -m lerobot.datasets.v30.convert_dataset_v21_to_v30, or collect the demos again"
        )
    bridge = info.get("bridge")
    if bridge is not None and (not isinstance(bridge, dict) or bridge.get("format_version") != FORMAT_VERSION):
        found = bridge.get("format_version") if isinstance(bridge, dict) else None
        raise CorruptFileError(
            f"the demo set at {path} is of bridge's format version {found}, this bridge reads {FORMAT_VERSION}; {hint}"
        )
    features = _served_features(info["features"], path, hint)
    if table is None or len(table) == 0:
        raise CorruptFileError(f"the demo set at {path} is empty; {hint}")
    missing = [name for name in (*features, "task_index") if name not in table.column_names]
    if missing:
        raise CorruptFileError(f"the demo set at {path} lacks the columns {missing} in its data files; {hint}")
    if (np.diff(table["episode_index"].to_numpy()) < 0).any():
        raise CorruptFileError(f"the demo set at {path} holds its episodes out of order in its data files; {hint}")
    task_names = np.empty(len(names), dtype=object)
    task_names[names["task_index"].to_numpy()] = names.index.astype(str).to_numpy()
    task_index = table["task_index"].to_numpy()
    if task_index.min() < 0 or task_index.max() >= len(names):
        raise CorruptFileError(f"the demo set at {path} names tasks that meta/tasks.parquet lacks; {hint}")
    image_key = next(name for name, ft in info["features"].items() if ft.get("dtype") == "image" and name in features)
    columns = {"observation.image" if name == image_key else name: table[name] for name in features}
    served = {"observation.image" if name == image_key else name: ft for name, ft in features.items()}
    columns["task"] = pa.array(task_names[task_index], pa.string())
    hf = _hf_features(served)
    for name in ("observation.state", "action"):  # a float state or action is served as a vector, of one too
        if name in served and served[name]["dtype"].startswith("float") and isinstance(hf[name], Value):
            hf[name] = List(hf[name], length=1)
            columns[name] = pa.FixedSizeListArray.from_arrays(columns[name].combine_chunks(), 1)
    hf["task"] = Value("string")
    try:
        dataset = Dataset(table_cast(pa.table(columns), hf.arrow_schema))
    except (ValueError, TypeError, pa.ArrowException) as err:
        raise CorruptFileError(
            f"the data files at {path} do not match meta/info.json's features ({err}); {hint}"
        ) from None
    unnormalised = [n for n in ("observation.state", "action") if n in hf and isinstance(hf[n], List)
                    and not {"min", "max"} <= set(stats.get(n, {}))]  # fmt: skip
    if unnormalised:
        raise CorruptFileError(
            f"the demo set at {path} has no min and max of {', '.join(unnormalised)} in {STATS}, which the policy "
            f"normalises with; {hint}"
        )
    meta = {
        **(bridge or {}),
        "fps": info["fps"],
        "num_episodes": len(np.unique(dataset["episode_index"])),
        "num_frames": len(dataset),
        "stats": stats,
        "features": served,
    }
    return dataset, meta


def _served_features(features: dict, path: Path, hint: str) -> dict:
    """info.json's features of the columns the policy trains on: one camera, an optional state, the action, the
    episode and frame indices. Refuses a set without them, with more than one camera, or with videos only."""
    images = [name for name, ft in features.items() if isinstance(ft, dict) and ft.get("dtype") == "image"]
    videos = [name for name, ft in features.items() if isinstance(ft, dict) and ft.get("dtype") == "video"]
    if "observation.image" in images:
        images = ["observation.image"]
    if not images:
        stored = f"stores its frames as videos ({', '.join(videos)})" if videos else "has no image feature"
        raise ConfigError(
            f"the dataset at {path} {stored}; bridge trains on frames stored in the data files (dtype image): write "
            "it with LeRobotDataset.create(..., use_videos=False), or collect demos with bridge"
        )
    if len(images) > 1:
        raise ConfigError(
            f"the dataset at {path} has {len(images)} cameras ({', '.join(images)}) and bridge's policy sees one; "
            "keep one image feature (or name it observation.image)"
        )
    wanted = [images[0], "observation.state", "action", "episode_index", "frame_index"]
    missing = [name for name in wanted if name not in features and name != "observation.state"]
    if missing:
        raise ConfigError(f"the dataset at {path} has no {', '.join(missing)} feature; bridge trains on an image, "
                          f"an optional observation.state, an action and a task; {hint}")  # fmt: skip
    served = {name: features[name] for name in wanted if name in features}
    for name, ft in served.items():
        shape = list(ft.get("shape", []))
        fits = len(shape) == 3 and shape[2] == 3 if name == images[0] else len(shape) == 1
        if not fits:
            raise ConfigError(
                f"the dataset at {path} has {name} of shape {shape}; bridge takes (H, W, 3) frames and vectors"
            )
    return served


def collect_hint(path: Path, world: str | None = None, world_options: dict | None = None) -> str:
    """How to (re)collect the set at ``path`` of ``world`` (the default world's when None), as a command that
    collects that world's demos when run as printed; never --overwrite for a folder bridge did not write."""
    if path.is_dir() and any(path.iterdir()) and folder_kind(path) != DEMOS:
        return f"{path} holds other files; collect the demos into another folder and point to it"
    options = " ".join(
        shlex.quote(f"{k}={v if isinstance(v, str) else json.dumps(v)}") for k, v in (world_options or {}).items()
    )
    command = (
        "python -m bridge vla collect"
        + (f" --world {world}" if world else "")
        + (f" --world-options {options}" if options else "")
    )
    again = folder_kind(path) == DEMOS
    return (
        f"collect it{' again' if again else ''}: {command} --episodes N --out {path}{' --overwrite' if again else ''}"
    )
