"""Demonstrations: a world's expert episodes as a LeRobot-style ``datasets.Dataset``, and the
LightningDataModule that serves them.

On disk a demo set is a ``Dataset.save_to_disk`` folder plus ``meta.json`` (LeRobot's meta/info.json and
stats.json in one): the world's name and options, its observation and action specs, how the demos were
collected, and the statistics the policy normalises with. Columns: ``observation.image`` (PNG),
``observation.state`` (when the world has a state vector), ``action``, ``task``, ``episode_index``,
``frame_index``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from datasets import Dataset, Features, Image, List, Value, load_from_disk
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler
from tqdm.auto import tqdm

from bridge.errors import ConfigError, CorruptFileError, MissingFileError
from bridge.runs import check_writable, folder_kind, replace_folder
from bridge.vla.actions import chunk_indices, history_indices
from bridge.vla.collect import default_workers, expert_episodes
from bridge.vla.spaces import ActionSpace, ObservationSpec
from bridge.vla.world import World
from bridge.vla.worlds import get_world

META_FILE = "meta.json"
DEMOS = "demos"  # the kind bridge marks a demo set's folder with (bridge.runs)
LEGACY_ENV_IDS = {"bridge/Reach-v0": "reach"}  # demo sets written before worlds had names


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


def collect_demos(
    episodes: int,
    env_config: dict | None = None,
    seed: int = 0,
    noise: float | None = None,
    num_envs: int = 16,
    progress: bool = True,
    world: str | World = "reach",
    workers: int | None = None,
) -> tuple[Dataset, dict]:
    """``episodes`` successful expert episodes of ``world`` (seeds ``seed``, ``seed + 1``, ...) and their ``meta``.

    ``env_config`` sets the world's options; ``noise`` the expert's (None: the world's default). The world
    executes the expert's actions, and each frame records what the expert's ``label`` names for it (for
    Reach the noise-free command, DART). The rare failed episode is dropped and the next seed used, so
    behaviour cloning never imitates a failure. Seeds stay below the world's validation and evaluation
    seeds. ``workers`` processes (None: one per core) share the seeds; the episodes do not depend on how many.
    """
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1 (processes that collect), got {workers}")
    world = get_world(world, **(env_config or {}))
    expert = world.expert(seed=seed, noise=noise)  # checks the noise here, before any process starts
    workers = workers or default_workers()
    kept, failed, next_seed = [], 0, seed
    with tqdm(total=episodes, desc="collecting demos", unit="ep", disable=not progress) as bar:
        while len(kept) < episodes:
            need = episodes - len(kept)
            seeds = range(next_seed, next_seed + need)
            if seeds[-1] >= world.validation_seed_offset:
                raise ConfigError(
                    f"demo seeds would reach {world.validation_seed_offset:,}, where {world.name}'s validation "
                    f"seeds start (its evaluation seeds at {world.eval_seed_offset:,}); collect fewer episodes or "
                    "from a lower --seed"
                )
            for block, block_failed in expert_episodes(world, seeds, noise, num_envs, workers):
                kept += block
                failed += block_failed
                bar.update(len(block))
            next_seed += need
            if failed > episodes:
                raise RuntimeError(f"the expert failed {failed} episodes; check the world's options {world}")
    features = demo_features(world.observation, world.action_space)
    rows: dict[str, list] = {name: [] for name in features}
    for index, ep in enumerate(kept):
        for t, (image, label) in enumerate(zip(ep.frames, ep.labels)):  # frames has one more: the last
            rows["observation.image"].append(image)
            if "observation.state" in rows:
                rows["observation.state"].append(ep.states[t])
            rows["action"].append(label)
            rows["task"].append(ep.task)
            rows["episode_index"].append(index)
            rows["frame_index"].append(t)
    dataset = Dataset.from_dict(rows, features=features)
    meta = {
        "world": world.name,
        "env": world.options,
        "observation": asdict(world.observation),
        "action_space": asdict(world.action_space),
        "fps": world.fps,
        "expert": expert.describe(),
        "seed": seed,
        "num_episodes": episodes,
        "num_frames": len(dataset),
        "failed_episodes": failed,
        "stats": _stats(rows, world.action_space),
    }
    return dataset, meta


def _stats(rows: dict[str, list], action_space: ActionSpace) -> dict:
    """Per-dimension statistics of the state and of continuous actions (discrete actions need none)."""
    keys = ["observation.state"] if "observation.state" in rows else []
    keys += ["action"] if action_space.kind == "box" else []
    stats = {}
    for key in keys:
        v = np.asarray(rows[key])
        stats[key] = {
            "min": v.min(0).tolist(),
            "max": v.max(0).tolist(),
            "mean": v.mean(0).tolist(),
            "std": v.std(0).tolist(),
        }
    return stats


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
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    return replace_folder(tmp, path, DEMOS)


def load_demos(path: str | os.PathLike) -> tuple[Dataset, dict]:
    """A demo set saved by :func:`save_demos`, checked: present, readable, non-empty, with LeRobot's columns.

    A set written before worlds had names (``env_id`` "bridge/Reach-v0") loads as world ``reach``: its
    ``meta`` gains the ``world``, ``observation`` and ``action_space`` entries that newer sets carry.
    """
    path = Path(path)
    hint = f"collect it: python -m bridge vla collect --episodes N --out {path}"
    if folder_kind(path) == DEMOS:
        hint = f"collect it again: python -m bridge vla collect --episodes N --out {path} --overwrite"
    elif path.is_dir() and any(path.iterdir()):  # never suggest --overwrite for a folder bridge did not write
        hint = f"{path} holds other files; collect the demos into another folder and point to it"
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
    if not isinstance(meta, dict) or "stats" not in meta or "env" not in meta:
        raise CorruptFileError(f"{path}/{META_FILE} does not describe a demo set; {hint}")
    meta = _with_world(meta, path, hint)
    features = demo_features(ObservationSpec(**meta["observation"]), ActionSpace(**meta["action_space"]))
    missing = [name for name in features if name not in dataset.column_names]
    if missing:
        raise CorruptFileError(f"the demo set at {path} lacks the columns {missing}; {hint}")
    if len(dataset) == 0:
        raise CorruptFileError(f"the demo set at {path} is empty; {hint}")
    return dataset, meta


def _with_world(meta: dict, path: Path, hint: str) -> dict:
    """``meta`` with its world's name and specs, read from the world for a set that predates them."""
    if "world" in meta and "observation" in meta and "action_space" in meta:
        return meta
    name = meta.get("world") or LEGACY_ENV_IDS.get(meta.get("env_id"))
    if name is None:
        raise CorruptFileError(f"{path}/{META_FILE} names no world (no 'world' or known 'env_id'); {hint}")
    world = get_world(name, **meta["env"])
    return {
        "world": name,
        "observation": asdict(world.observation),
        "action_space": asdict(world.action_space),
        **meta,
    }


def decode_frames(dataset: Dataset, chunk: int = 4096) -> torch.Tensor:
    """All of ``observation.image`` as one (N, H, W, 3) uint8 tensor, decoded a chunk at a time into it.

    Decoding the column in one go holds every frame at least twice (the decoded list and the stacked array):
    for GoToLocal's 0.9 GiB of frames it raised the process's peak memory by 3.4 GiB, chunk by chunk by 1.1 GiB.
    """
    column = dataset.select_columns("observation.image").with_format("numpy")
    first = column[0]["observation.image"]
    images = torch.empty((len(dataset), *first.shape), dtype=torch.uint8)
    for start in range(0, len(dataset), chunk):
        part = column[start : start + chunk]["observation.image"]
        images[start : start + len(part)] = torch.from_numpy(np.asarray(part))
    return images


class DemoFrames(torch.utils.data.Dataset):
    """Frames with their next ``horizon`` actions, held in memory as tensors (a toy-scale set is ~0.2 GB).

    With ``n_obs_steps`` k > 1 each item's image is its last k frames (k, H, W, 3), as the rollout shows them.
    """

    def __init__(self, dataset: Dataset, horizon: int, action_space: ActionSpace, n_obs_steps: int = 1) -> None:
        columns = dataset.remove_columns("observation.image").with_format("numpy")[:]
        self.images = decode_frames(dataset)
        episode_index = torch.from_numpy(columns["episode_index"])
        self.history = history_indices(episode_index, n_obs_steps) if n_obs_steps > 1 else None
        n = len(self.images)
        # A world without a state vector serves (N, 0) states, so every batch has the same keys.
        states = columns["observation.state"] if "observation.state" in columns else np.zeros((n, 0), np.float32)
        self.states = torch.from_numpy(states).float()
        actions = torch.from_numpy(columns["action"])
        actions = actions.float() if action_space.kind == "box" else actions.long()
        low, high = action_space.low, action_space.high
        if not torch.isfinite(actions.float()).all() or actions.min() < low - 1e-5 or actions.max() > high + 1e-5:
            raise CorruptFileError(
                f"the demo set holds actions outside the action space {action_space} or non-finite ones; "
                "collect it again"
            )
        rows, self.is_pad = chunk_indices(episode_index, horizon)
        self.chunks = actions[rows]  # (N, horizon, *action shape)
        self.tasks = [str(t) for t in columns["task"]]
        self.episode_index = episode_index

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, i: int | list[int]) -> dict:
        """Item ``i``, or with a list of indices the batch of them with each distinct frame once (:meth:`batch`)."""
        if isinstance(i, list):
            return self.batch(i)
        return {
            "observation.image": self.images[i] if self.history is None else self.images[self.history[i]],
            "observation.state": self.states[i],
            "action": self.chunks[i],
            "action_is_pad": self.is_pad[i],
            "task": self.tasks[i],
        }

    def batch(self, indices: list[int]) -> dict:
        """The items ``indices`` as one batch whose ``observation.image`` (U, H, W, 3) holds each distinct frame
        once and ``observation.image_index`` (B, k) the row of every item's frames in it.

        With a frame history, neighbouring steps of an episode share k - 1 frames: a batch of whole episodes
        holds each frame once instead of up to k times, and the policy encodes it once.
        """
        rows = torch.as_tensor(indices)
        history = rows[:, None] if self.history is None else self.history[rows]
        distinct, image_index = torch.unique(history, return_inverse=True)
        return {
            "observation.image": self.images[distinct],
            "observation.image_index": image_index,
            "observation.state": self.states[rows],
            "action": self.chunks[rows],
            "action_is_pad": self.is_pad[rows],
            "task": [self.tasks[i] for i in indices],
        }


class EpisodeOrder(torch.utils.data.Sampler[int]):
    """Every frame once per epoch, episode after episode in a fresh random order of episodes, each episode's
    frames in order, so a batch cut from it holds whole episodes (and their shared frames) together.

    ``seed`` None draws one from torch's global generator, so ``seed_everything`` fixes it; each epoch's order
    then follows from the seed and the epoch alone, so DDP ranks seeded alike cut the same batches to share.
    """

    def __init__(self, episode_index: torch.Tensor, seed: int | None = None) -> None:
        _, counts = torch.unique_consecutive(episode_index, return_counts=True)
        self.episodes = torch.arange(len(episode_index)).split(counts.tolist())
        self.seed = int(torch.randint(2**62, ())) if seed is None else seed
        self.epoch = 0

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.episodes)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        for e in torch.randperm(len(self.episodes), generator=generator).tolist():
            yield from self.episodes[e].tolist()


class DemoDataModule(L.LightningDataModule):
    """A world's expert demonstrations as batches for :class:`bridge.lit.vla.VLAPolicy`.

    Args:
        path: the demo set. When it does not exist, ``prepare_data`` collects ``episodes`` episodes there.
        world: the world's name (``reach``); an existing set must hold this world's demos.
        episodes, seed, noise, env: how to collect (``env``: the world's options; ``noise`` None: the
            expert's default). For an existing set, ``episodes`` and ``env`` (when given) must match it.
        val_fraction: share of *episodes* (never frames of one episode on both sides) held out, seeded.
        action_horizon: actions served per frame (``action`` is (B, horizon, action_dim)); at least the
            policy's chunk.
        batch_by: ``frame``: batches of frames drawn at random. ``episode``: batches cut from whole episodes
            in random order, each distinct frame served once (see :meth:`DemoFrames.batch`); with a history
            of k frames the policy encodes about k times fewer frames per step.
        augment: apply the world's symmetry (:meth:`~bridge.vla.world.World.augment`, e.g. BabyAI's colours
            permuted) to each training batch; validation batches stay as recorded.

    Batches: ``observation.image`` (B, H, W, 3) uint8, or (B, k, H, W, 3) with a history of k,
    ``observation.state`` (B, state_dim), ``action`` (B, horizon, action_dim) and ``action_is_pad``
    (B, horizon) in env units, ``task`` a list of strings. By episode, ``observation.image`` is (U, H, W, 3)
    and ``observation.image_index`` (B, k) says which of its frames each item sees.
    """

    def __init__(
        self,
        path: str = "runs/demos/reach",
        world: str = "reach",
        episodes: int | None = 1000,
        seed: int = 0,
        noise: float | None = None,
        env: dict | None = None,
        val_fraction: float = 0.05,
        action_horizon: int = 1,
        batch_size: int = 64,
        num_workers: int = 0,
        batch_by: Literal["frame", "episode"] = "frame",
        augment: bool = False,
    ) -> None:
        super().__init__()
        if not 0 <= val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if batch_by not in ("frame", "episode"):
            raise ConfigError(f"batch_by must be frame or episode, got {batch_by!r}")
        self.save_hyperparameters()
        self.path, self.action_horizon = Path(path), action_horizon
        self.meta: dict | None = None
        self.train_set: DemoFrames | None = None
        self.val_set: DemoFrames | None = None
        self.symmetry: World | None = None

    def prepare_data(self) -> None:
        """Collect the demo set if it is not on disk yet (Lightning runs this on one process per node)."""
        hp = self.hparams
        if not self.path.exists():
            dataset, meta = collect_demos(hp.episodes or 1000, hp.env, hp.seed, hp.noise, world=hp.world)
            save_demos(dataset, meta, self.path)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        dataset, self.meta = load_demos(self.path)
        self._check_matches(self.meta)
        if self.hparams.augment:
            self.symmetry = get_world(self.world, **self.env_config)
            if not self.symmetry.augmentation:
                raise ConfigError(f"world {self.world} has no symmetry to augment demos with; set augment: false")
        episode_index = np.asarray(dataset["episode_index"])
        episodes = np.unique(episode_index)
        rng = np.random.default_rng(self.hparams.seed)
        n_val = round(len(episodes) * self.hparams.val_fraction)
        is_val = np.isin(episode_index, rng.choice(episodes, size=n_val, replace=False))
        args = self.action_horizon, self.action_space, self.observation.n_obs_steps
        self.train_set = DemoFrames(dataset.select(np.flatnonzero(~is_val)), *args)
        self.val_set = DemoFrames(dataset.select(np.flatnonzero(is_val)), *args) if n_val else None

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if self.symmetry is not None and self.trainer is not None and self.trainer.training:
            images, tasks = self.symmetry.augment(batch["observation.image"], list(batch["task"]))
            batch = {**batch, "observation.image": images, "task": tasks}
        return batch

    def _check_matches(self, meta: dict) -> None:
        hp, wrong = self.hparams, []
        if hp.world != meta["world"]:
            wrong.append(f"world={meta['world']!r} (asked for {hp.world!r})")
        if hp.episodes is not None and hp.episodes != meta["num_episodes"]:
            wrong.append(f"episodes={meta['num_episodes']} (asked for {hp.episodes})")
        stored_noise = meta.get("expert", {}).get("noise", 0.0)  # sets from before the bot took noise have none
        if hp.noise is not None and stored_noise != hp.noise:
            wrong.append(f"noise={stored_noise} (asked for {hp.noise})")
        stored = meta["env"]
        for key, value in (hp.env or {}).items():
            if stored.get(key) != value:
                wrong.append(f"env.{key}={stored.get(key)!r} (asked for {value!r})")
        if wrong:
            raise ConfigError(
                f"the demo set at {self.path} holds {', '.join(wrong)}; point path at another folder to collect "
                "a new set, or set episodes: null and drop env and noise to use this one as it is"
            )

    @property
    def stats(self) -> dict:
        return self._meta()["stats"]

    @property
    def world(self) -> str:
        """The name of the world the demos are of."""
        return self._meta()["world"]

    @property
    def env_config(self) -> dict:
        """The world's options the demos were collected with."""
        return self._meta()["env"]

    @property
    def observation(self) -> ObservationSpec:
        return ObservationSpec(**self._meta()["observation"])

    @property
    def action_space(self) -> ActionSpace:
        return ActionSpace(**self._meta()["action_space"])

    def _meta(self) -> dict:
        if self.meta is None:
            self.meta = load_demos(self.path)[1]
        return self.meta

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        drop_last = len(self.train_set) > hp.batch_size  # a last batch of one would break BatchNorm in the encoder
        workers = {"num_workers": hp.num_workers, "persistent_workers": hp.num_workers > 0}
        if hp.batch_by == "frame":
            return DataLoader(self.train_set, batch_size=hp.batch_size, shuffle=True, drop_last=drop_last, **workers)
        order = EpisodeOrder(self.train_set.episode_index)
        return self._batched(self.train_set, BatchSampler(order, hp.batch_size, drop_last), workers)

    def val_dataloader(self) -> DataLoader | list:
        hp = self.hparams
        if self.val_set is None:
            return []
        if hp.batch_by == "frame":
            return DataLoader(self.val_set, batch_size=hp.batch_size * 2, num_workers=hp.num_workers)
        batches = BatchSampler(SequentialSampler(self.val_set), hp.batch_size * 2, drop_last=False)
        return self._batched(self.val_set, batches, {"num_workers": hp.num_workers})

    @staticmethod
    def _batched(frames: DemoFrames, batches: BatchSampler, workers: dict) -> DataLoader:
        # batch_size=None: each "index" the sampler yields is a whole batch's list, which DemoFrames serves as one.
        return DataLoader(frames, sampler=batches, batch_size=None, **workers)
