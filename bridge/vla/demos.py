"""Demonstrations: a scripted expert, its episodes as a LeRobot-style ``datasets.Dataset``, and the
LightningDataModule that serves them.

On disk a demo set is a ``Dataset.save_to_disk`` folder plus ``meta.json`` (LeRobot's meta/info.json and
stats.json in one): the world's configuration, how the demos were collected, and the statistics the
policy normalises with. Columns: ``observation.image`` (PNG), ``observation.state`` (x, y), ``action``
(dx, dy), ``task``, ``episode_index``, ``frame_index``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
from datasets import Dataset, Features, Image, List, Value, load_from_disk
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bridge.vla.actions import chunk_indices
from bridge.vla.env import ENV_ID, ReachConfig
from bridge.vla.evaluate import rollouts

FEATURES = Features(
    {
        "observation.image": Image(),
        "observation.state": List(Value("float32"), length=2),
        "action": List(Value("float32"), length=2),
        "task": Value("string"),
        "episode_index": Value("int64"),
        "frame_index": Value("int64"),
    }
)
META_FILE = "meta.json"


class ScriptedExpert:
    """A proportional controller toward the (privileged) target, executed with Gaussian noise.

    :meth:`command` heads straight for the target at full speed and slows to land on it. Calling the
    expert adds ``noise`` (per axis, in action units) to that command, which spreads the demonstrations
    over states off the ideal path, the states a learned policy's own small errors lead to.
    """

    def __init__(self, noise: float = 0.1, gain: float = 1.0, step_size: float = 0.1, seed: int = 0) -> None:
        self.noise, self.gain, self.step_size = noise, gain, step_size
        self.rng = np.random.default_rng(seed)

    def command(self, state: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The noise-free action(s) for agent ``state`` and ``target`` positions (..., 2)."""
        action = self.gain * (np.asarray(target) - np.asarray(state)) / self.step_size
        action = action / np.maximum(1.0, np.abs(action).max(axis=-1, keepdims=True))  # keep the direction
        return action.astype(np.float32)

    def __call__(self, obs: dict, info: dict) -> np.ndarray:
        action = self.command(obs["state"], info["target"])
        return np.clip(action + self.noise * self.rng.standard_normal(action.shape), -1.0, 1.0).astype(np.float32)


def collect_demos(
    episodes: int,
    env_config: dict | None = None,
    seed: int = 0,
    noise: float = 0.1,
    num_envs: int = 16,
    progress: bool = True,
) -> tuple[Dataset, dict]:
    """``episodes`` successful expert episodes (seeds ``seed``, ``seed + 1``, ...) and their ``meta``.

    The world executes the expert's noisy actions, but each frame's ``action`` is the expert's noise-free
    command for that state (DART, Laskey et al. 2017): the demonstrations visit off-path states and show
    how to recover from them without teaching the noise itself. The rare failed episode is dropped and
    the next seed used, so behaviour cloning never imitates a failure.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    config = ReachConfig(**(env_config or {}))
    expert = ScriptedExpert(noise=noise, step_size=config.step_size, seed=seed)
    kept, failed, next_seed = [], 0, seed
    with tqdm(total=episodes, desc="collecting demos", unit="ep", disable=not progress) as bar:
        while len(kept) < episodes:
            need = episodes - len(kept)
            for ep in rollouts(expert, range(next_seed, next_seed + need), asdict(config), num_envs, record=need):
                if ep.success:
                    kept.append(ep)
                    bar.update()
                else:
                    failed += 1
            next_seed += need
            if failed > episodes:
                raise RuntimeError(f"the expert failed {failed} episodes; check the world's configuration {config}")
    rows: dict[str, list] = {name: [] for name in FEATURES}
    for index, ep in enumerate(kept):
        for t, (image, state) in enumerate(zip(ep.frames, ep.states)):  # frames has one more: the last
            rows["observation.image"].append(image)
            rows["observation.state"].append(state)
            rows["action"].append(expert.command(state, ep.target))
            rows["task"].append(ep.task)
            rows["episode_index"].append(index)
            rows["frame_index"].append(t)
    dataset = Dataset.from_dict(rows, features=FEATURES)
    meta = {
        "env_id": ENV_ID,
        "env": asdict(config),
        "fps": 10,
        "expert": {"noise": noise, "gain": expert.gain, "action": "noise-free command (DART)"},
        "seed": seed,
        "num_episodes": episodes,
        "num_frames": len(dataset),
        "failed_episodes": failed,
        "stats": _stats(np.asarray(rows["observation.state"]), np.asarray(rows["action"])),
    }
    return dataset, meta


def _stats(states: np.ndarray, actions: np.ndarray) -> dict:
    return {
        key: {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "mean": v.mean(0).tolist(), "std": v.std(0).tolist()}
        for key, v in (("observation.state", states), ("action", actions))
    }


def save_demos(dataset: Dataset, meta: dict, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the set to a temporary folder, then rename it into place: a crash never leaves half a set at ``path``."""
    path = Path(path)
    if len(dataset) == 0:
        raise ValueError("refusing to save an empty demo set")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"{path} already exists and is not empty; choose another --out or pass --overwrite")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dataset.save_to_disk(str(tmp))
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def load_demos(path: str | os.PathLike) -> tuple[Dataset, dict]:
    """A demo set saved by :func:`save_demos`, checked: present, readable, non-empty, with LeRobot's columns."""
    path = Path(path)
    hint = f"collect it again: python -m bridge vla collect --episodes N --out {path} --overwrite"
    if not path.is_dir():
        raise FileNotFoundError(f"no demo set at {path}; {hint}")
    try:
        meta = json.loads((path / META_FILE).read_text())
        dataset = load_from_disk(str(path))
    except (OSError, ValueError, KeyError, IndexError) as err:  # json, datasets and pyarrow on a damaged folder
        raise ValueError(
            f"the demo set at {path} is missing files or corrupted ({type(err).__name__}: {err}); {hint}"
        ) from None
    if not isinstance(dataset, Dataset):
        raise ValueError(f"{path} holds a {type(dataset).__name__}, not one demo Dataset; {hint}")
    missing = sorted(set(FEATURES) - set(dataset.column_names))
    if missing:
        raise ValueError(f"the demo set at {path} lacks the columns {missing}; {hint}")
    if len(dataset) == 0:
        raise ValueError(f"the demo set at {path} is empty; {hint}")
    if meta.get("env_id") != ENV_ID or "stats" not in meta:
        raise ValueError(f"{path}/{META_FILE} does not describe a {ENV_ID} demo set; {hint}")
    return dataset, meta


class DemoFrames(torch.utils.data.Dataset):
    """Frames with their next ``horizon`` actions, held in memory as tensors (a toy-scale set is ~0.2 GB)."""

    def __init__(self, dataset: Dataset, horizon: int) -> None:
        columns = dataset.with_format("numpy")[:]
        self.images = torch.from_numpy(columns["observation.image"])  # (N, H, W, 3) uint8, decoded once
        self.states = torch.from_numpy(columns["observation.state"]).float()
        actions = torch.from_numpy(columns["action"]).float()
        if not torch.isfinite(actions).all() or actions.abs().max() > 1 + 1e-5:
            raise ValueError("the demo set holds actions outside the action space [-1, 1]^2 or non-finite ones")
        rows, self.is_pad = chunk_indices(torch.from_numpy(columns["episode_index"]), horizon)
        self.chunks = actions[rows]  # (N, horizon, 2)
        self.tasks = [str(t) for t in columns["task"]]

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, i: int) -> dict:
        return {
            "observation.image": self.images[i],
            "observation.state": self.states[i],
            "action": self.chunks[i],
            "action_is_pad": self.is_pad[i],
            "task": self.tasks[i],
        }


class DemoDataModule(L.LightningDataModule):
    """Expert demonstrations of ``bridge/Reach-v0`` as batches for :class:`bridge.lit.vla.VLAPolicy`.

    Args:
        path: the demo set. When it does not exist, ``prepare_data`` collects ``episodes`` episodes there.
        episodes, seed, noise, env: how to collect (``env``: :class:`~bridge.vla.env.ReachConfig` fields).
            For an existing set, ``episodes`` and ``env`` (when given) must match what it holds.
        val_fraction: share of *episodes* (never frames of one episode on both sides) held out, seeded.
        action_horizon: actions served per frame (``action`` is (B, horizon, 2)); at least the policy's chunk.

    Batches: ``observation.image`` (B, H, W, 3) uint8, ``observation.state`` (B, 2), ``action``
    (B, horizon, 2) and ``action_is_pad`` (B, horizon) in env units, ``task`` a list of strings.
    """

    def __init__(
        self,
        path: str = "runs/demos/reach",
        episodes: int | None = 1000,
        seed: int = 0,
        noise: float = 0.1,
        env: dict | None = None,
        val_fraction: float = 0.05,
        action_horizon: int = 1,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.path, self.action_horizon = Path(path), action_horizon
        self.meta: dict | None = None
        self.train_set: DemoFrames | None = None
        self.val_set: DemoFrames | None = None

    def prepare_data(self) -> None:
        """Collect the demo set if it is not on disk yet (Lightning runs this on one process per node)."""
        hp = self.hparams
        if not self.path.exists():
            dataset, meta = collect_demos(hp.episodes or 1000, hp.env, hp.seed, hp.noise)
            save_demos(dataset, meta, self.path)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        dataset, self.meta = load_demos(self.path)
        self._check_matches(self.meta)
        episode_index = np.asarray(dataset["episode_index"])
        episodes = np.unique(episode_index)
        rng = np.random.default_rng(self.hparams.seed)
        n_val = round(len(episodes) * self.hparams.val_fraction)
        is_val = np.isin(episode_index, rng.choice(episodes, size=n_val, replace=False))
        self.train_set = DemoFrames(dataset.select(np.flatnonzero(~is_val)), self.action_horizon)
        self.val_set = DemoFrames(dataset.select(np.flatnonzero(is_val)), self.action_horizon) if n_val else None

    def _check_matches(self, meta: dict) -> None:
        hp, wrong = self.hparams, []
        if hp.episodes is not None and hp.episodes != meta["num_episodes"]:
            wrong.append(f"episodes={meta['num_episodes']} (asked for {hp.episodes})")
        stored = meta["env"]
        for key, value in (hp.env or {}).items():
            if stored.get(key) != value:
                wrong.append(f"env.{key}={stored.get(key)!r} (asked for {value!r})")
        if wrong:
            raise ValueError(
                f"the demo set at {self.path} holds {', '.join(wrong)}; point path at another folder to collect "
                "a new set, or set episodes: null and drop env to use this one as it is"
            )

    @property
    def stats(self) -> dict:
        return self._meta()["stats"]

    @property
    def env_config(self) -> dict:
        return self._meta()["env"]

    def _meta(self) -> dict:
        if self.meta is None:
            self.setup()
        return self.meta

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            # drop_last: a last batch of one would break BatchNorm in the encoder
            self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
            drop_last=len(self.train_set) > self.hparams.batch_size,
            num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0,
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size * 2, num_workers=self.hparams.num_workers)
