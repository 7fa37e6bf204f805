"""What a world is: a seeded, vectorised environment factory with an expert, instructions and its specs.

A world is a frozen dataclass whose fields are its options (``Reach(image_size=32)``), registered by name
with :func:`bridge.vla.worlds.registry.register_world`. Demos, evaluation, the policy and the CLI read every size and
the vocabulary from it (or from a demo set's metadata, which records them), never from constants.

Every environment a world makes speaks one dialect: observations are a dict with ``image`` (H, W, 3)
uint8, ``task`` (the instruction) and, when ``observation.state_dim > 0``, ``state`` float32; ``info``
carries whatever privileged facts the world's expert needs.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_type_hints

import numpy as np

from bridge.errors import ConfigError
from bridge.vla.worlds.agents import Expert
from bridge.vla.worlds.spaces import ActionSpace, ObservationSpec

if TYPE_CHECKING:
    import gymnasium as gym
    from torch import Tensor

Split = Literal["train", "heldout", "all"]


KINDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def check_option_types(cls: type[World], options: dict[str, Any]) -> None:
    """Refuse an option of the wrong kind (``n_obs_steps=2.5`` or ``=true``), which the dataclass would keep and
    record as given. Only plain types are checked; a world's own ``__post_init__`` checks ranges and the rest."""
    hints = get_type_hints(cls)
    for key, value in options.items():
        kind = hints.get(key)
        if kind not in (int, float, str, bool):
            continue
        # bool is an int to Python, not to a user; an int is a fine float.
        fits = (
            isinstance(value, bool)
            if kind is bool
            else not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else kind)
        )
        if not fits:
            raise ConfigError(f"world option {key}={json.dumps(value)}: {key} takes {KINDS[kind]}")


class World(abc.ABC):
    """Base of every world; subclasses are frozen dataclasses whose fields are the options.

    ``family`` is set by ``register_world``; a world with variants (``babyai:GoToLocal``) receives the
    variant as its first field and overrides :attr:`name`.
    """

    family: ClassVar[str] = ""
    fps: ClassVar[int] = 10  # of its videos and of the demo set's metadata
    # Demos use seeds seed, seed + 1, ...; evaluation starts here, and demo collection refuses to reach it (or
    # the validation scenes below it), so no evaluation scene was seen in training. (BabyAI's own is 10**9.)
    eval_seed_offset: ClassVar[int] = 1_000_000
    # Whether collecting its demos pays for more processes: a world that steps in Python per environment (BabyAI's
    # bot) does; one that steps its environments as arrays (Reach) finishes before a spawned process has started.
    collect_in_processes: ClassVar[bool] = True
    # A symmetry of the world that training may apply to demos (:meth:`augment`), in words; "" when it has none.
    augmentation: ClassVar[str] = ""

    @property
    def validation_seed_offset(self) -> int:
        """Where the scenes of validation rollouts during training start: between the demos' and the evaluation's,
        so a checkpoint picked by its validation success was never picked on the episodes it is reported on."""
        return self.eval_seed_offset // 2

    @property
    def name(self) -> str:
        """The registry name that rebuilds this world with :func:`~bridge.vla.worlds.registry.get_world`."""
        return self.family

    @property
    def options(self) -> dict[str, Any]:
        """The world's settings as plain data (stored in demo metadata and beside trained policies)."""
        return asdict(self)

    def replace(self, **options: Any) -> World:
        """The same world with some options changed (e.g. the paraphrases an evaluation uses)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ConfigError(f"world {self.name} has no options {unknown}; it takes {sorted(names)}")
        check_option_types(type(self), options)
        return dataclasses.replace(self, **options)  # every field, a variant too (its name carries it, not options)

    # -- specs -------------------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def observation(self) -> ObservationSpec: ...

    @property
    @abc.abstractmethod
    def action_space(self) -> ActionSpace: ...

    @property
    @abc.abstractmethod
    def max_steps(self) -> int:
        """The episode limit: an episode still running after this many steps is truncated."""

    # -- environments and agents ---------------------------------------------------------------------------
    @abc.abstractmethod
    def make(self, render_mode: str | None = "rgb_array") -> gym.Env:
        """One environment of this world (gymnasium API)."""

    def make_vec(self, num_envs: int) -> gym.vector.VectorEnv:
        """``num_envs`` environments in one process, stepped as a batch and seeded by ``reset(seed=[...])``.

        Same-step autoreset: the observation returned with ``done`` already belongs to the next episode (the
        last one is in ``info["final_obs"]``), so every action passed to ``step`` is one the world executed.
        """
        import gymnasium as gym

        return gym.vector.SyncVectorEnv(
            [self.make for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )

    @abc.abstractmethod
    def expert(self, seed: int = 0, noise: float | None = None) -> Expert:
        """The world's expert, an agent with two more methods: ``label(obs, info)``, the actions demos
        record (e.g. a noise-free command), and ``describe()``, plain data for the demo metadata.
        ``noise`` None is the world's default; a world whose expert has no noise refuses other values."""

    @abc.abstractmethod
    def instructions(self, split: Split = "all") -> list[str]:
        """Every instruction the world gives in ``split`` (the policy's tokenizer trains on ``"train"``)."""

    def success(self, reward: np.ndarray, terminated: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Which of a batch of finished episodes succeeded; by default, those that terminated (not truncated)."""
        return terminated

    def augment(self, images: Tensor, tasks: list[str]) -> tuple[Tensor, list[str]]:
        """A batch's frames (..., H, W, 3) uint8 and instructions under one random symmetry of the world (a scene
        the expert would solve with the same actions); see :attr:`augmentation`."""
        raise ConfigError(
            f"world {self.name} has no symmetry to augment with ({type(self).__name__}.augmentation is empty)"
        )

    def tasks(self, seeds: Sequence[int]) -> list[str]:
        """Each seed's instruction, read off a reset (no steps)."""
        env = self.make(render_mode=None)
        try:
            return [env.reset(seed=int(s))[0]["task"] for s in seeds]
        finally:
            env.close()
