"""The ``babyai:<Level>`` worlds: BabyAI (Chevalier-Boisvert et al., ICLR 2019), from Farama's ``minigrid``.

Any BabyAI level of minigrid is a world: ``babyai:GoToLocal`` is gymnasium's ``BabyAI-GoToLocal-v0``. The
agent sees pixels, by default the benchmark's own view (its 7x7 egocentric window at tile size 8, 56x56 RGB),
or the whole room (``view="full"``); the instruction is the mission string ("go to the red ball"); the actions
are minigrid's seven; an episode succeeds when its reward is positive, within the level's own step limit.

The expert is BabyAI's bot (``minigrid.utils.baby_ai_bot.BabyAIBot``). It reads the simulator's state, so it
lives beside each environment, which hands itself to the expert in ``info["bot"]``. The bot starts only when the
expert first asks for an action in an episode and then follows every step: evaluating a policy never pays for
it. When the bot fails (it gives up on an opened box, say), its episode is truncated as a failure, which demo
collection drops and counts.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import io
import re
import string
from dataclasses import asdict, dataclass
from importlib.metadata import version
from typing import Any, ClassVar, Literal

import gymnasium as gym
import minigrid  # noqa: F401  (importing it registers the BabyAI levels with gymnasium, once)
import numpy as np
import torch
from gymnasium import spaces
from minigrid.core.constants import COLOR_NAMES
from minigrid.core.grid import Grid
from minigrid.utils.baby_ai_bot import BabyAIBot

from bridge.errors import ConfigError, UnknownNameError
from bridge.vla.worlds.babyai_recolour import recolour
from bridge.vla.worlds.base import Split, World
from bridge.vla.worlds.registry import register_world
from bridge.vla.worlds.spaces import ActionSpace, ObservationSpec

VIEWS = ("partial", "full")
NUM_ACTIONS = 7  # left, right, forward, pickup, drop, toggle, done
NUM_MOVES = 3  # the first three actions move the agent: left, right, forward
TASK_CHARSET = string.ascii_lowercase + " ,"

# The BabyAI mission grammar (minigrid.envs.babyai.core.verifier): an object description is an article, an
# optional colour, a type ("object" when the type is open) and an optional location relative to the agent;
# clauses are "go to", "pick up", "open" and "put ... next to", chained by ", then", "after you" and "and".
TYPES = ("box", "ball", "key", "door", "object")
LOCATIONS = ("", " in front of you", " behind you", " on your left", " on your right")
CLAUSES = ("go to {}", "pick up {}", "open {}", "put {} next to the red ball")
CONNECTORS = ("{}, then {}", "{} after you {}", "{} and {}")


def instructions() -> list[str]:
    """Sentences that use every word of the BabyAI mission grammar (a vocabulary, not the levels' distribution)."""
    descriptions = [
        f"{article} {colour}{kind}{loc}"
        for article in ("the", "a")
        for colour in ("", *(f"{c} " for c in COLOR_NAMES))
        for kind in TYPES
        for loc in LOCATIONS
    ]
    sentences = [clause.format(d) for clause in CLAUSES for d in descriptions]
    return sentences + [c.format("go to the red ball", "open a door") for c in CONNECTORS]


@functools.cache
def levels() -> dict[str, str]:
    """Every BabyAI level minigrid registers, by name, with its gymnasium id (the newest version of each)."""
    found: dict[str, tuple[int, str]] = {}
    for env_id in gym.registry:
        match = re.fullmatch(r"BabyAI-(\w+)-v(\d+)", env_id)
        if match and int(match[2]) >= found.get(match[1], (-1, ""))[0]:
            found[match[1]] = (int(match[2]), env_id)
    return {name: env_id for name, (_, env_id) in sorted(found.items())}


@functools.cache
def _probe(level: str, view: str, tile_size: int) -> tuple[int, int]:
    """The level's step limit and the image side of ``view``, read off one reset (cached: a reset costs ~1 ms)."""
    env = BabyAIEnv(BabyAI(level, view=view, tile_size=tile_size), render_mode=None)
    try:
        obs, _ = env.reset(seed=0)
        return int(env.unwrapped.max_steps), int(obs["image"].shape[0])
    finally:
        env.close()


@register_world("babyai")
@dataclass(frozen=True)
class BabyAI(World):
    """A BabyAI level (``babyai:<Level>``); the options are how the agent sees it.

    ``view`` "partial" is BabyAI's egocentric 7x7 window (``7 * tile_size`` pixels a side), "full" the whole
    grid with the agent's window highlighted. ``n_obs_steps`` is the frame history the policy sees: a partial
    view needs memory.
    """

    level: str = ""
    view: Literal["partial", "full"] = "partial"
    tile_size: int = 8
    n_obs_steps: int = 1

    # BabyAI evaluates from seed 10**9; demo seeds from 0 stay below it.
    eval_seed_offset: ClassVar[int] = 10**9
    augmentation: ClassVar[str] = "the six colours permuted alike in the frames and the missions"

    def __post_init__(self) -> None:
        known = levels()
        if self.level not in known:
            close = difflib.get_close_matches(self.level, known, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(f'babyai:{c}' for c in close)}? " if close else ""
            problem = f"no BabyAI level {self.level!r}" if self.level else "no BabyAI level named"
            raise UnknownNameError(
                f"{problem}; {hint}name one as babyai:<Level>, e.g. babyai:GoToLocal. minigrid {version('minigrid')} "
                f"has: {', '.join(known)}"
            )
        if self.view not in VIEWS:
            raise ConfigError(f"view must be one of {', '.join(VIEWS)}, got {self.view!r}")
        if self.tile_size < 1 or self.n_obs_steps < 1:
            raise ConfigError(f"tile_size and n_obs_steps must be >= 1, got {self.tile_size}, {self.n_obs_steps}")

    @property
    def name(self) -> str:
        return f"babyai:{self.level}"

    @property
    def options(self) -> dict[str, Any]:
        """The settings beside the level, which the name carries (``get_world(name, **options)`` rebuilds it)."""
        return {k: v for k, v in asdict(self).items() if k != "level"}

    @property
    def gym_id(self) -> str:
        return levels()[self.level]

    @property
    def observation(self) -> ObservationSpec:
        image_size = _probe(self.level, self.view, self.tile_size)[1]
        return ObservationSpec(image_size=image_size, n_obs_steps=self.n_obs_steps)

    @property
    def action_space(self) -> ActionSpace:
        return ActionSpace.discrete(NUM_ACTIONS)

    @property
    def max_steps(self) -> int:
        """The level's step limit. A level whose missions chain several clauses (GoToSeq, BossLevel) sets it per
        episode from their number; this is the limit of its first episode."""
        return _probe(self.level, self.view, self.tile_size)[0]

    def make(self, render_mode: str | None = "rgb_array") -> BabyAIEnv:
        return BabyAIEnv(self, render_mode=render_mode)

    def expert(self, seed: int = 0, noise: float | None = None) -> BotExpert:
        """The bot; ``noise`` (None: 0) is the chance that a step executes a random move instead (DART)."""
        noise = noise or 0.0
        if not 0 <= noise < 1:
            raise ConfigError(f"BabyAI's noise is the chance of a random move per step, in [0, 1); got {noise}")
        return BotExpert(noise, seed)

    def instructions(self, split: Split = "all") -> list[str]:
        # BabyAI has no held-out paraphrases: every split but "heldout" is the whole grammar.
        return [] if split == "heldout" else instructions()

    def augment(self, images: torch.Tensor, tasks: list[str]) -> tuple[torch.Tensor, list[str]]:
        # One permutation for the whole batch: with batches by episode, frames are shared between its items.
        return recolour(images, tasks, torch.randperm(len(COLOR_NAMES)).tolist(), self.tile_size)

    def success(self, reward: np.ndarray, terminated: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return np.asarray(reward) > 0  # BabyAI's definition: the mission was completed in time


class BabyAIEnv(gym.Wrapper):
    """A BabyAI level in the World dialect: ``image`` (H, W, 3) uint8 and ``task`` (the mission); minigrid's
    discrete actions and rewards. ``info["bot"]`` is the environment itself, whose :meth:`bot_action` the
    expert asks."""

    def __init__(self, world: BabyAI, render_mode: str | None = "rgb_array") -> None:
        super().__init__(gym.make(world.gym_id, render_mode=render_mode, disable_env_checker=True))
        self.world = world
        grid, tile = self.unwrapped, world.tile_size
        rows, cols = (grid.agent_view_size,) * 2 if world.view == "partial" else (grid.height, grid.width)
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (rows * tile, cols * tile, 3), dtype=np.uint8),
                "task": spaces.Text(max_length=512, min_length=1, charset=TASK_CHARSET),
            }
        )
        self._bot: BabyAIBot | None = None
        self._bot_next = 0
        self._bot_failed = False
        # The agent's view of the grid is computed by minigrid's step, again by the frame and again by the bot:
        # it was half of demo collection's time. Between steps the state is fixed, so one computation serves all.
        self._gen_obs_grid, self._view, self._moving = self.unwrapped.gen_obs_grid, None, False
        self.unwrapped.gen_obs_grid = self._obs_grid

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        # Level generation rejects and redraws layouts, printing "Sampling rejected: ..." each time (minigrid's
        # RoomGridLevel._gen_grid). Only reset generates layouts, so only its prints are swallowed.
        with contextlib.redirect_stdout(io.StringIO()), self._changing():
            self.env.reset(seed=seed, options=options)
        self._bot, self._bot_failed = None, False
        return self._observation(), {"bot": self}

    def step(self, action):
        action = int(action)
        with self._changing():
            _, reward, terminated, truncated, info = self.env.step(action)
        if self._bot is not None and not (terminated or truncated):
            self._bot_next = self._replan(action)
        # An episode whose bot gave up ends as a failure: its demo would imitate actions nobody planned.
        truncated = truncated or (self._bot_failed and not terminated)
        return self._observation(), float(reward), terminated, truncated, {**info, "bot": self}

    def bot_action(self) -> int:
        """The bot's next action. The bot starts when first asked in an episode and then follows every step."""
        if self._bot is None and not self._bot_failed:
            try:
                self._bot = BabyAIBot(self.env)
            except Exception:  # third-party code: whatever it raises, the episode is one to drop
                self._bot_failed, self._bot_next = True, int(self.unwrapped.actions.done)
            else:
                self._bot_next = self._replan(None)
        return self._bot_next

    def _replan(self, action: int | None) -> int:
        try:
            return int(self._bot.replan(action))
        except Exception:  # DisappearedBoxError, a failed assertion: the bot gives up
            self._bot_failed = True
            return int(self.unwrapped.actions.done)  # a no-op; the episode is truncated on this step

    @contextlib.contextmanager
    def _changing(self):
        """While minigrid steps or resets, the state changes: every view is computed, and the last one kept."""
        self._moving = True
        try:
            yield
        finally:
            self._moving = False

    def _obs_grid(self, agent_view_size: int | None = None):
        if agent_view_size is not None:  # another window than the agent's (a wrapper's): never kept
            return self._gen_obs_grid(agent_view_size)
        # minigrid's step and reset compute the view last (gen_obs), after every change of state: keep that one.
        if self._moving or self._view is None:
            self._view = self._gen_obs_grid()
        return self._view

    def _observation(self) -> dict[str, Any]:
        grid, tile = self.unwrapped, self.world.tile_size
        if self.world.view == "partial":
            image = _pov_frame(grid, tile)
        else:
            image = grid.get_frame(highlight=grid.highlight, tile_size=tile)  # as minigrid's RGBImgObsWrapper
        return {"image": image, "task": grid.mission}


def _pov_frame(env, tile: int) -> np.ndarray:
    """The agent's view as ``env.get_frame(agent_pov=True)`` draws it (minigrid's RGBImgPartialObsWrapper), from
    the same cached tiles in a quarter of the time: minigrid's ``Grid.render`` was a third of demo collection."""
    view, visible = env.gen_obs_grid()
    n = view.width  # the view is square; the agent sits at the bottom centre, facing up
    tiles = [
        Grid.render_tile(view.get(i, j), agent_dir=3 if (i, j) == (n // 2, n - 1) else None,
                         highlight=visible[i, j], tile_size=tile)
        for j in range(n)
        for i in range(n)
    ]  # fmt: skip
    frame = np.stack(tiles).astype(np.uint8)  # minigrid caches float tiles and casts them into its uint8 frame
    return frame.reshape(n, n, tile, tile, 3).transpose(0, 2, 1, 3, 4).reshape(n * tile, n * tile, 3)


class BotExpert:
    """BabyAI's bot: each environment's own (``info["bot"]``) names the next action, and demos record it.

    With ``noise`` p the world executes, on a share p of the steps, a random move (turn left, turn right or
    forward) in place of the bot's action, while the demos still record the bot's (DART, Laskey et al. 2017):
    the bot plans again from wherever the move left the agent, so the demos show how to get back on course
    from the detours a policy's own mistakes take it on. Moves only: a random pickup or toggle would change the
    room, which the bot undoes rather than goes on from.
    """

    def __init__(self, noise: float = 0.0, seed: int = 0) -> None:
        self.noise, self.rng = noise, np.random.default_rng(seed)

    def label(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        # Asked again on the same step, the bot answers the same: it replans only when the env steps.
        return np.array([env.bot_action() for env in info["bot"]], dtype=np.int64)

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        actions = self.label(obs, info)
        if self.noise:
            moved = self.rng.random(len(actions)) < self.noise
            actions[moved] = self.rng.integers(0, NUM_MOVES, moved.sum())
        return actions

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "BabyAIBot (minigrid.utils.baby_ai_bot)", "minigrid": version("minigrid"), "noise": self.noise,
            "action": "the bot's own, also on the steps that executed a random move (DART)",
        }  # fmt: skip
