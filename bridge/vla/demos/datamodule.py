"""The LightningDataModule of demonstrations: collects a demo set when it is missing, splits it by episode and
serves it as batches of frames, or of whole episodes with each shared frame once. Any LeRobot v3 set whose
features fit the world trains, one that LeRobot wrote included."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from bridge.errors import ConfigError
from bridge.vla.demos.collect import collect_demos
from bridge.vla.demos.format import lerobot_features, load_demos, save_demos
from bridge.vla.demos.frames import DemoFrames, EpisodeOrder
from bridge.vla.worlds import ActionSpace, ObservationSpec, World, get_world


class DemoDataModule(L.LightningDataModule):
    """A world's expert demonstrations as batches for :class:`bridge.vla.training.VLAPolicy`.

    Args:
        path: the demo set, a LeRobot v3 folder. When it does not exist, ``prepare_data`` collects ``episodes``
            episodes there.
        world: the world's name (``reach``); a set bridge collected must hold this world's demos. A set without
            bridge's metadata (one LeRobot wrote) is taken as demos of this world with ``world_options``, which
            validation rollouts and evaluation then run in; its image, state and action must fit the world's.
        episodes, collect_seed, noise, world_options: how to collect (episodes from seed ``collect_seed``, None:
            ``seed``; ``noise`` None: the expert's default). For an existing set, ``episodes``, ``noise`` and
            ``world_options`` (when given) must match it.
        seed: draws the episodes held out for validation (and, by default, the demos collected).
        val_fraction: share of *episodes* (never frames of one episode on both sides) held out, seeded.
        action_horizon: actions served per frame (``action`` is (B, horizon, action_dim)); at least the
            policy's chunk.
        batch_by: ``frame``: batches of frames drawn at random. ``episode``: batches cut from whole episodes
            in random order, each distinct frame served once (see :meth:`DemoFrames.batch`); with a history
            of k frames the policy encodes about k times fewer frames per step.
        augment: apply the world's symmetry (:meth:`~bridge.vla.worlds.World.augment`, e.g. BabyAI's colours
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
        world_options: dict | None = None,
        collect_seed: int | None = None,
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
        self._world: World | None = None

    def prepare_data(self) -> None:
        """Collect the demo set if it is not on disk yet (Lightning runs this on one process per node)."""
        hp = self.hparams
        if not self.path.exists():
            world = get_world(hp.world, **(hp.world_options or {}))
            seed = hp.seed if hp.collect_seed is None else hp.collect_seed
            save_demos(*collect_demos(world, hp.episodes or 1000, seed, hp.noise), self.path)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        dataset, self.meta = load_demos(self.path, self.hparams.world, self.hparams.world_options)
        self._check_matches(self.meta)
        self._check_fits(self.meta["features"])
        if self.hparams.augment:
            if not self.world.augmentation:
                raise ConfigError(f"world {self.world.name} has no symmetry to augment demos with; set augment: false")
            self.symmetry = self.world
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
        if hp.episodes is not None and hp.episodes != meta["num_episodes"]:
            wrong.append(f"episodes={meta['num_episodes']} (asked for {hp.episodes})")
        if "world" in meta:  # collected by bridge: what it was collected with is known
            if hp.world != meta["world"]:
                wrong.append(f"world={meta['world']!r} (asked for {hp.world!r})")
            stored_noise = meta["expert"].get("noise")
            if hp.noise is not None and stored_noise != hp.noise:
                wrong.append(f"noise={stored_noise} (asked for {hp.noise})")
            stored = meta["world_options"]
            for key, value in (hp.world_options or {}).items():
                if stored.get(key) != value:
                    wrong.append(f"world_options.{key}={stored.get(key)!r} (asked for {value!r})")
        if wrong:
            raise ConfigError(
                f"the demo set at {self.path} holds {', '.join(wrong)}; point path at another folder to collect "
                "a new set, or set episodes: null and drop world_options and noise to use this one as it is"
            )

    def _check_fits(self, features: dict) -> None:
        """The set's image, state and action have the world's shapes (a set LeRobot wrote names no world)."""
        world, wrong = self.world, []
        expected = lerobot_features(world.observation, world.action_space)
        for name in ("observation.image", "observation.state", "action"):
            want, got = expected.get(name, {}), features.get(name, {})
            shape, wanted = list(got.get("shape", [])), want.get("shape", [])
            if shape != wanted:
                wrong.append(f"{name} of shape {shape or 'none'} (world {world.name}: {wanted or 'none'})")
            elif got and want["dtype"] != "image" and got["dtype"][:3] != want["dtype"][:3]:  # float32/64, int32/64
                wrong.append(f"{name} of dtype {got['dtype']} (world {world.name}: {want['dtype']})")
        if wrong:
            raise ConfigError(
                f"the demo set at {self.path} does not fit world {world.name}: it has {', '.join(wrong)}; name the "
                "world these demos are of with data.init_args.world and world_options (e.g. image_size)"
            )

    @property
    def stats(self) -> dict:
        return self._meta()["stats"]

    @property
    def world(self) -> World:
        """The world the demos are of, with the options they were collected with (or, for a set without bridge's
        metadata, the world and options this DataModule names)."""
        if self._world is None:
            meta, hp = self._meta(), self.hparams
            if "world" in meta:
                self._world = get_world(meta["world"], **meta["world_options"])
            else:
                self._world = get_world(hp.world, **(hp.world_options or {}))
        return self._world

    @property
    def observation(self) -> ObservationSpec:
        return self.world.observation

    @property
    def action_space(self) -> ActionSpace:
        return self.world.action_space

    def _meta(self) -> dict:
        if self.meta is None:
            self.meta = load_demos(self.path, self.hparams.world, self.hparams.world_options)[1]
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
