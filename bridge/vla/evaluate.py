"""Closed-loop evaluation in any world: Wilson intervals, baselines, language ablations and videos.

A policy is judged by whether it succeeds in its world, not by its validation loss. Every condition runs on
the *same* episodes (the same seeds, so the same scenes and instructions): the policy, the policy with a
blank or a shuffled instruction (language ablations), the world's expert (ceiling) and uniformly random
actions (floor).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from bridge.errors import ConfigError
from bridge.vla.agents import Agent, RandomAgent
from bridge.vla.rollout import Episode, rollouts
from bridge.vla.world import World
from bridge.vla.worlds import get_world

SEED_STRIDE = 10_000  # evaluation seed s uses scenes offset + s * SEED_STRIDE + i

CONDITIONS = ("policy", "blank", "shuffled", "expert", "random")


# -- statistics ------------------------------------------------------------------------------------------


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% (z = 1.96) Wilson score interval of a success rate; sensible at 0%, 100% and small n."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class ConditionResult:
    """Success of one condition over all episodes, pooled across evaluation seeds."""

    name: str
    successes: int
    episodes: int
    ci95: tuple[float, float]
    mean_steps_to_success: float  # NaN when nothing succeeded
    per_seed: list[float]  # success rate of each evaluation seed
    mean_steps: float = math.nan  # the mean length of every episode, failures (cut at the step limit) included

    @property
    def success_rate(self) -> float:
        return self.successes / max(1, self.episodes)

    def summary(self) -> str:
        low, high = self.ci95
        steps = "-" if math.isnan(self.mean_steps_to_success) else f"{self.mean_steps_to_success:.1f}"
        rate = f"{self.success_rate:6.1%} [{low:.1%}, {high:.1%}]"
        return f"{self.name:>9}: {rate}  steps {steps}  length {self.mean_steps:.1f}"


def summarise(name: str, episodes: list[Episode], groups: int) -> ConditionResult:
    wins = [ep for ep in episodes if ep.success]
    size = len(episodes) // groups
    per_seed = [sum(ep.success for ep in episodes[g * size : (g + 1) * size]) / size for g in range(groups)]
    steps = float(np.mean([ep.steps for ep in wins])) if wins else float("nan")
    length = float(np.mean([ep.steps for ep in episodes])) if episodes else float("nan")
    ci95 = wilson_interval(len(wins), len(episodes))
    return ConditionResult(name, len(wins), len(episodes), ci95, steps, per_seed, mean_steps=length)


def eval_seeds(episodes: int, seeds: int, offset: int = World.eval_seed_offset) -> list[int]:
    """The evaluation episodes: ``episodes`` scenes for each of ``seeds`` evaluation seeds, from ``offset`` up."""
    return [offset + s * SEED_STRIDE + i for s in range(seeds) for i in range(episodes)]


def shuffled(tasks: Sequence[str], seed: int = 0) -> list[str]:
    """Each episode gets another episode's instruction (a random derangement), so the words are real but wrong."""
    n = len(tasks)
    if n < 2:
        raise ConfigError("the shuffled-instruction ablation needs at least two episodes")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    # Rotate a random order by one: every episode receives another one's instruction.
    target = np.empty(n, dtype=int)
    target[perm] = np.roll(perm, -1)
    return [tasks[j] for j in target]


def evaluate(
    policy: Agent | None,
    env_config: dict | None = None,
    episodes: int = 50,
    seeds: int = 3,
    num_envs: int = 50,
    conditions: Sequence[str] = CONDITIONS,
    record: int = 0,
    expert_noise: float | None = None,
    progress: bool = True,
    world: str | World = "reach",
    scenes: Literal["evaluation", "validation"] = "evaluation",
) -> tuple[dict[str, ConditionResult], dict[str, list[Episode]]]:
    """Run ``conditions`` on the same ``episodes x seeds`` scenes of ``world``; return results and the episodes.

    ``policy`` is any agent (e.g. ``Policy.as_agent()``; None when only the expert and random run),
    ``env_config`` the world's options. Each condition's first ``record`` episodes keep their frames (for
    :func:`write_video`). ``scenes="validation"`` draws the scenes from the world's validation seeds instead,
    for choosing a checkpoint during training without touching the episodes it will be reported on.
    """
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown:
        raise ConfigError(f"unknown conditions {unknown}; choose from {', '.join(CONDITIONS)}")
    if episodes < 1 or seeds < 1:
        raise ConfigError(f"evaluation needs at least one episode and one seed, got episodes={episodes}, seeds={seeds}")
    world = get_world(world, **(env_config or {}))
    offset = world.validation_seed_offset if scenes == "validation" else world.eval_seed_offset
    seed_list = eval_seeds(episodes, seeds, offset)
    told: dict[str, Sequence[str] | None] = {"blank": [""] * len(seed_list)}
    if "shuffled" in conditions:  # every episode told another one's instruction (needs two episodes or more)
        told["shuffled"] = shuffled(world.tasks(seed_list))
    agents: dict[str, Agent | None] = {
        "policy": policy, "blank": policy, "shuffled": policy,
        "expert": world.expert(seed=0, noise=expert_noise),
        "random": RandomAgent(world.action_space, seed=0),
    }  # fmt: skip
    results, rolled = {}, {}
    for name in conditions:
        if agents[name] is None:
            raise ConfigError(f"condition {name!r} needs a policy; pass one or ask only for expert and random")
        stream = rollouts(agents[name], seed_list, world, num_envs, told.get(name), record)
        eps = list(tqdm(stream, total=len(seed_list), desc=f"eval {name}", unit="ep", disable=not progress))
        rolled[name], results[name] = eps, summarise(name, eps, seeds)
    return results, rolled


# -- videos ----------------------------------------------------------------------------------------------


def write_video(episodes: Sequence[Episode], path: str | Path, fps: int = 5, scale: int = 4, columns: int = 4) -> Path:
    """Tile the recorded ``episodes`` side by side, each captioned with what the agent was told and
    framed green on success, red on failure; write a GIF or MP4 (by ``path``'s suffix)."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix not in (".gif", ".mp4"):
        raise ConfigError(f"video path must end in .gif or .mp4, got {path.name}")
    recorded = [ep for ep in episodes if ep.frames]
    if not recorded:
        raise ConfigError("no recorded frames; pass record=N to evaluate/rollouts")
    length = max(len(ep.frames) for ep in recorded)
    tiles = [_tiles(ep, length, scale) for ep in recorded]
    if len(tiles) > columns:  # fill the last row of the grid with black tiles
        tiles += [[np.zeros_like(tiles[0][0])] * length] * (-len(tiles) % columns)
    rows = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    frames = [
        np.concatenate([np.concatenate([tile[t] for tile in row], axis=1) for row in rows], axis=0)
        for t in range(length)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        iio.imwrite(path, frames, duration=1000 / fps, loop=0)
    else:
        # H.264 wants even sides; pad by one pixel where needed.
        frames = [np.pad(f, ((0, f.shape[0] % 2), (0, f.shape[1] % 2), (0, 0))) for f in frames]
        iio.imwrite(path, np.stack(frames), fps=fps)  # imageio-ffmpeg's bundled ffmpeg, H.264
    return path


def _tiles(ep: Episode, length: int, scale: int) -> list[np.ndarray]:
    """Captioned, bordered, upscaled frames of one episode, padded to ``length`` with its last frame."""
    from PIL import Image, ImageDraw

    border = (0, 200, 0) if ep.success else (200, 0, 0)
    caption = ep.given if ep.given else "(blank instruction)"
    out = []
    for t in range(length):
        frame = ep.frames[min(t, len(ep.frames) - 1)]
        big = np.kron(frame, np.ones((scale, scale, 1), dtype=np.uint8))  # nearest-neighbour, no blur
        h, w = big.shape[:2]
        done = t >= len(ep.frames) - 1
        canvas = Image.new("RGB", (w + 4, h + 18), border if done else (60, 60, 60))
        canvas.paste(Image.fromarray(big), (2, 2))
        ImageDraw.Draw(canvas).text((3, h + 4), caption[: w // 6], fill=(255, 255, 255))
        out.append(np.asarray(canvas))
    return out
