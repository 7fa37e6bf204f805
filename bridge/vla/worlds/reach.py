"""The ``reach`` world (gymnasium id ``bridge/Reach-v0``): reach the object an instruction names, in a 64x64 RGB scene.

The scene holds ``num_objects`` distinct (colour, shape) pairs drawn with :func:`bridge.data.draw_shape`
(the palette of the ``shapes`` dataset, so a backbone pretrained there sees the same objects) and a
white agent marker. The instruction ("go to the red circle", or a paraphrase) is part of the
observation (``task``), as in LeRobot. Positions are in [-1, 1] with x to the right and y down; pixel
``(col, row)`` of an ``S x S`` frame covers ``x in [2 col / S - 1, 2 (col + 1) / S - 1)``. The expert
is a scripted proportional controller that knows the target's position.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from bridge.data.shapes import BACKGROUND, COLOURS, SHAPES, draw_shape
from bridge.errors import ConfigError
from bridge.vla.worlds.base import Split, World
from bridge.vla.worlds.registry import register_world
from bridge.vla.worlds.spaces import ActionSpace, ObservationSpec

ENV_ID = "bridge/Reach-v0"

# "{}" is "<colour> <shape>". The held-out paraphrases never appear in demonstrations; their verbs are
# words the locally trained tokenizer has never seen, so they also test the unknown-token path.
TRAIN_TEMPLATES: tuple[str, ...] = (
    "go to the {}",
    "move to the {}",
    "reach the {}",
    "navigate to the {}",
    "head to the {}",
    "drive to the {}",
)
HELDOUT_TEMPLATES: tuple[str, ...] = ("get to the {}", "approach the {}", "make your way to the {}")
PARAPHRASES: dict[str, tuple[str, ...]] = {
    "train": TRAIN_TEMPLATES,
    "heldout": HELDOUT_TEMPLATES,
    "all": TRAIN_TEMPLATES + HELDOUT_TEMPLATES,
}
OBJECTS: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLOURS for s in SHAPES)
AGENT_COLOUR = (255, 255, 255)  # white: no object has it
TASK_CHARSET = string.ascii_lowercase + string.digits + " "


def instructions(paraphrases: Split = "all") -> list[str]:
    """Every instruction the world can give with these paraphrases (for training a tokenizer)."""
    return [t.format(f"{c} {s}") for t in PARAPHRASES[paraphrases] for c, s in OBJECTS]


@register_world("reach")
@dataclass(frozen=True)
class Reach(World):
    """The world and its geometry; lengths are in units of the [-1, 1] frame (2 = the image side).

    At 64x64 an object spans ~10 px, a full step moves ~3 px, and success means the agent's centre is
    within ~5 px of the target's centre. Objects are at least ``min_separation`` apart, so success
    regions never overlap and every object is fully visible.
    """

    collect_in_processes: ClassVar[bool] = False  # numpy steps: one process collects faster than a spawned pool

    image_size: int = 64
    num_objects: int = 4
    max_steps: int = 40
    step_size: float = 0.1
    success_radius: float = 0.15
    object_radius: float = 0.16
    agent_radius: float = 0.08
    min_separation: float = 0.5
    start_clearance: float = 0.3  # the agent never starts inside (or next to) a success region
    paraphrases: Split = "train"

    def __post_init__(self) -> None:
        if not 1 <= self.num_objects <= len(OBJECTS):
            raise ConfigError(
                f"num_objects must be 1..{len(OBJECTS)} (distinct colour-shape pairs), got {self.num_objects}"
            )
        if self.image_size < 16:
            raise ConfigError(f"image_size must be >= 16 to tell a triangle from a circle, got {self.image_size}")
        if self.paraphrases not in PARAPHRASES:
            raise ConfigError(f"paraphrases must be one of {', '.join(PARAPHRASES)}, got {self.paraphrases!r}")
        if self.max_steps < 1 or self.step_size <= 0 or self.success_radius <= 0:
            raise ConfigError("max_steps, step_size and success_radius must be positive")

    @property
    def observation(self) -> ObservationSpec:
        return ObservationSpec(image_size=self.image_size, state_dim=2)

    @property
    def action_space(self) -> ActionSpace:
        return ActionSpace.box(2)

    def make(self, render_mode: str | None = "rgb_array") -> ReachEnv:
        return ReachEnv(render_mode=render_mode, **self.options)

    def expert(self, seed: int = 0, noise: float | None = None) -> ScriptedExpert:
        return ScriptedExpert(noise=0.1 if noise is None else noise, step_size=self.step_size, seed=seed)

    def instructions(self, split: Split = "all") -> list[str]:
        return instructions(split)


class ReachEnv(gym.Env):
    """Reach the named object. Action (dx, dy) in [-1, 1]^2 moves the agent by ``step_size`` per unit.

    Observation: ``image`` (H, W, 3) uint8, ``state`` (x, y) float32 in [-1, 1], ``task`` the instruction.
    Reward 1 and ``terminated`` on success; ``truncated`` after ``max_steps``. ``info`` carries the
    privileged ``target`` position (for the scripted expert), ``distance`` and ``success``.
    Actions outside the space raise a ValueError rather than being clipped silently: a policy that
    emits them has a bug worth seeing.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = "rgb_array", **config: Any) -> None:
        self.config = Reach(**config)
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.render_mode = render_mode
        size = self.config.image_size
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (size, size, 3), dtype=np.uint8),
                "state": spaces.Box(-1.0, 1.0, (2,), dtype=np.float32),
                "task": spaces.Text(max_length=64, min_length=0, charset=TASK_CHARSET),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self._templates = PARAPHRASES[self.config.paraphrases]
        self._scene: np.ndarray | None = None

    # -- episode -------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        cfg, rng = self.config, self.np_random
        kinds = rng.choice(len(OBJECTS), size=cfg.num_objects, replace=False)
        self.objects = [OBJECTS[k] for k in kinds]
        self.positions = self._place(rng)
        self.target_index = int(rng.integers(cfg.num_objects))
        # Always draw the template from the same stream position, so "train" and "heldout" paraphrases of
        # one seed describe the very same scene.
        template = self._templates[int(rng.random() * len(self._templates))]
        colour, shape = self.objects[self.target_index]
        self.task = template.format(f"{colour} {shape}")
        self.agent = self._start(rng)
        self.steps = 0
        self._scene = self._draw_objects()
        return self._observation(), self._info()

    def step(self, action):
        if self._scene is None:
            raise RuntimeError("call reset() before step()")
        action = self._check_action(action)
        cfg = self.config
        self.agent = np.clip(self.agent + cfg.step_size * action, -1.0, 1.0).astype(np.float32)
        self.steps += 1
        info = self._info()
        terminated = bool(info["success"])
        truncated = not terminated and self.steps >= cfg.max_steps
        return self._observation(), float(terminated), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The current frame, (H, W, 3) uint8 (the ``image`` of the observation)."""
        if self.render_mode is None:
            return None
        if self._scene is None:
            raise RuntimeError("call reset() before render()")
        return self._frame()

    # -- helpers -------------------------------------------------------------------------------------------
    @property
    def target(self) -> np.ndarray:
        return self.positions[self.target_index]

    def _check_action(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (2,):
            raise ValueError(f"{ENV_ID} takes an action of shape (2,) (dx, dy), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{ENV_ID} got a non-finite action {a.tolist()}")
        if np.abs(a).max() > 1.0 + 1e-5:
            raise ValueError(
                f"action {a.tolist()} is outside the action space [-1, 1]^2; "
                "clip it (np.clip(action, -1, 1)) or fix the policy's un-normalisation"
            )
        return np.clip(a, -1.0, 1.0)

    def _place(self, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        bound = 1.0 - cfg.object_radius - 0.02  # keep every object fully inside the frame
        for _ in range(1000):
            points = rng.uniform(-bound, bound, size=(cfg.num_objects, 2))
            gaps = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(cfg.num_objects) * 9
            if gaps.min() >= cfg.min_separation:
                return points.astype(np.float32)
        raise RuntimeError(
            f"could not place {cfg.num_objects} objects {cfg.min_separation} apart; lower num_objects or min_separation"
        )

    def _start(self, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        for _ in range(1000):
            agent = rng.uniform(-0.9, 0.9, size=2)
            if np.linalg.norm(self.positions - agent, axis=-1).min() >= cfg.success_radius + cfg.start_clearance:
                return agent.astype(np.float32)
        raise RuntimeError("no free start position for the agent; lower num_objects")

    def _to_pixels(self, xy: np.ndarray) -> tuple[float, float]:
        size = self.config.image_size
        return float((xy[0] + 1) / 2 * size), float((xy[1] + 1) / 2 * size)

    def _draw_objects(self) -> np.ndarray:
        size = self.config.image_size
        canvas = np.empty((size, size, 3), dtype=np.uint8)
        canvas[:] = BACKGROUND
        radius = self.config.object_radius * size / 2
        for (colour, shape), xy in zip(self.objects, self.positions):
            draw_shape(canvas, shape, colour, self._to_pixels(xy), radius)
        return canvas

    def _frame(self) -> np.ndarray:
        # The objects are static: draw them once per episode and only the agent per step.
        frame = self._scene.copy()
        radius = self.config.agent_radius * self.config.image_size / 2
        return draw_shape(frame, "circle", AGENT_COLOUR, self._to_pixels(self.agent), radius)

    def _observation(self) -> dict[str, Any]:
        return {"image": self._frame(), "state": self.agent.copy(), "task": self.task}

    def _info(self) -> dict[str, Any]:
        distance = float(np.linalg.norm(self.agent - self.target))
        return {
            "target": self.target.copy(),
            "distance": distance,
            "success": distance <= self.config.success_radius,
        }


class ScriptedExpert:
    """A proportional controller toward the (privileged) target, executed with Gaussian noise.

    :meth:`command` heads straight for the target at full speed and slows to land on it. Calling the
    expert adds ``noise`` (per axis, in action units) to that command, which spreads the demonstrations
    over states off the ideal path, the states a learned policy's own small errors lead to. Demos record
    the noise-free command (:meth:`label`; DART, Laskey et al. 2017): they show how to recover from those
    states without teaching the noise itself.
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

    def label(self, obs: dict, info: dict) -> np.ndarray:
        return self.command(obs["state"], info["target"])

    def describe(self) -> dict[str, Any]:
        return {"noise": self.noise, "gain": self.gain, "action": "noise-free command (DART)"}


def register() -> None:
    """Register ``bridge/Reach-v0`` with gymnasium (idempotent; importing this module calls it)."""
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=ReachEnv, max_episode_steps=None, disable_env_checker=False)


register()
