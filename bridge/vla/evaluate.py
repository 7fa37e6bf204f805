"""Closed-loop evaluation: batched rollouts over vector envs, Wilson intervals, baselines and ablations.

A policy is judged by whether it reaches the object, not by its validation loss. Every condition runs on
the *same* episodes (the same seeds, so the same scenes and targets): the policy, the policy with a blank
or a shuffled instruction (language ablations), the scripted expert (ceiling) and uniformly random
actions (floor).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from bridge.vla.env import ReachConfig, make_vec

# (observation batch, info batch) -> actions (n, 2); observations hold only the still running episodes.
Agent = Callable[[dict[str, Any], dict[str, Any]], np.ndarray]

# Demonstrations use seeds seed, seed + 1, ...; evaluation starts far above, so no test scene was seen
# in training (unless a demo set has a million episodes).
EVAL_SEED_OFFSET = 1_000_000
SEED_STRIDE = 10_000

CONDITIONS = ("policy", "blank", "shuffled", "expert", "random")


@dataclass
class Episode:
    seed: int
    task: str  # the world's instruction
    given: str  # what the agent was told (differs under the language ablations)
    success: bool
    steps: int
    target: np.ndarray  # the target's position (privileged; for the expert's labels)
    frames: list[np.ndarray] = field(default_factory=list)  # what the agent saw, then the final frame
    states: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)


def rollouts(
    agent: Agent,
    seeds: Sequence[int],
    env_config: dict | None = None,
    num_envs: int = 50,
    instructions: Sequence[str] | None = None,
    record: int = 0,
) -> Iterator[Episode]:
    """Run one episode per seed, ``num_envs`` at a time, and yield them in seed order.

    ``instructions`` replaces what the agent is told, one per seed (the world still checks its own
    target). The first ``record`` episodes keep their frames, states and actions.
    """
    if instructions is not None and len(instructions) != len(seeds):
        raise ValueError(f"got {len(instructions)} instructions for {len(seeds)} seeds")
    n = max(1, min(num_envs, len(seeds)))
    envs = make_vec(n, **(env_config or {}))
    try:
        for start in range(0, len(seeds), n):
            wave = list(seeds[start : start + n])
            yield from _wave(envs, agent, wave, start, instructions, record)
    finally:
        envs.close()


def _wave(envs, agent: Agent, wave: list[int], start: int, instructions, record: int) -> Iterator[Episode]:
    n = envs.num_envs
    # A short last wave pads with copies of its last seed; those copies start inactive and are never reported.
    obs, info = envs.reset(seed=wave + [wave[-1]] * (n - len(wave)))
    tasks = list(obs["task"])
    given = list(instructions[start : start + len(wave)]) if instructions is not None else tasks[: len(wave)]
    episodes = [Episode(seed, tasks[i], given[i], False, 0, info["target"][i].copy()) for i, seed in enumerate(wave)]
    active = np.arange(n) < len(wave)
    steps = np.zeros(n, dtype=int)
    while active.any():
        idx = np.flatnonzero(active)
        sub_obs = {"image": obs["image"][idx], "state": obs["state"][idx], "task": [given[i] for i in idx]}
        actions = np.zeros((n, 2), dtype=np.float32)
        actions[idx] = agent(sub_obs, {"target": info["target"][idx]})
        for i in idx:
            if start + i < record:
                episodes[i].frames.append(obs["image"][i])
                episodes[i].states.append(obs["state"][i])
                episodes[i].actions.append(actions[i])
        obs, _, terminated, truncated, info = envs.step(actions)
        steps[active] += 1
        done = (terminated | truncated) & active
        for i in np.flatnonzero(done):
            episodes[i].success, episodes[i].steps = bool(terminated[i]), int(steps[i])
            # Same-step autoreset: ``obs`` already shows env i's next episode; its last frame is in final_obs.
            if start + i < record:
                episodes[i].frames.append(info["final_obs"][i]["image"])
        active &= ~done
    yield from episodes


# -- the agents ------------------------------------------------------------------------------------------


class RandomAgent:
    """Uniform actions in [-1, 1]^2: the floor any learned policy must beat."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: dict, info: dict) -> np.ndarray:
        return self.rng.uniform(-1, 1, size=(len(obs["state"]), 2)).astype(np.float32)


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

    @property
    def success_rate(self) -> float:
        return self.successes / max(1, self.episodes)

    def summary(self) -> str:
        low, high = self.ci95
        steps = "-" if math.isnan(self.mean_steps_to_success) else f"{self.mean_steps_to_success:.1f}"
        return f"{self.name:>9}: {self.success_rate:6.1%} [{low:.1%}, {high:.1%}]  steps {steps}"


def summarise(name: str, episodes: list[Episode], groups: int) -> ConditionResult:
    wins = [ep for ep in episodes if ep.success]
    size = len(episodes) // groups
    per_seed = [sum(ep.success for ep in episodes[g * size : (g + 1) * size]) / size for g in range(groups)]
    steps = float(np.mean([ep.steps for ep in wins])) if wins else float("nan")
    return ConditionResult(name, len(wins), len(episodes), wilson_interval(len(wins), len(episodes)), steps, per_seed)


def eval_seeds(episodes: int, seeds: int) -> list[int]:
    """The evaluation episodes: ``episodes`` scenes for each of ``seeds`` evaluation seeds."""
    return [EVAL_SEED_OFFSET + s * SEED_STRIDE + i for s in range(seeds) for i in range(episodes)]


def shuffled(tasks: Sequence[str], seed: int = 0) -> list[str]:
    """Each episode gets another episode's instruction (a random derangement), so the words are real but wrong."""
    n = len(tasks)
    if n < 2:
        raise ValueError("the shuffled-instruction ablation needs at least two episodes")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    # Rotate a random order by one: every episode receives another one's instruction.
    target = np.empty(n, dtype=int)
    target[perm] = np.roll(perm, -1)
    return [tasks[j] for j in target]


def evaluate(
    policy: Agent,
    env_config: dict | None = None,
    episodes: int = 50,
    seeds: int = 3,
    num_envs: int = 50,
    conditions: Sequence[str] = CONDITIONS,
    record: int = 0,
    expert_noise: float = 0.1,
    progress: bool = True,
) -> tuple[dict[str, ConditionResult], dict[str, list[Episode]]]:
    """Run ``conditions`` on the same ``episodes x seeds`` scenes; return results and the episodes.

    ``policy`` is any :data:`Agent` (e.g. ``Policy.as_agent()``). Each condition's first ``record``
    episodes keep their frames (for :func:`write_video`).
    """
    from bridge.vla.demos import ScriptedExpert  # demos builds on rollouts() from this module

    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"unknown conditions {unknown}; choose from {', '.join(CONDITIONS)}")
    if episodes < 1 or seeds < 1:
        raise ValueError(f"evaluation needs at least one episode and one seed, got episodes={episodes}, seeds={seeds}")
    config = ReachConfig(**(env_config or {}))
    seed_list = eval_seeds(episodes, seeds)
    told: dict[str, Sequence[str] | None] = {"blank": [""] * len(seed_list)}
    if "shuffled" in conditions:  # every episode told another one's instruction (needs two episodes or more)
        told["shuffled"] = shuffled(_instructions(seed_list, env_config))
    agents: dict[str, Agent] = {
        "policy": policy, "blank": policy, "shuffled": policy,
        "expert": ScriptedExpert(noise=expert_noise, step_size=config.step_size, seed=0),
        "random": RandomAgent(seed=0),
    }  # fmt: skip
    results, rolled = {}, {}
    for name in conditions:
        stream = rollouts(agents[name], seed_list, env_config, num_envs, told.get(name), record)
        eps = list(tqdm(stream, total=len(seed_list), desc=f"eval {name}", unit="ep", disable=not progress))
        rolled[name], results[name] = eps, summarise(name, eps, seeds)
    return results, rolled


def _instructions(seeds: Sequence[int], env_config: dict | None) -> list[str]:
    """Each seed's instruction, read off a reset (cheap: no steps)."""
    from bridge.vla.env import ReachEnv

    env = ReachEnv(render_mode=None, **(env_config or {}))
    return [env.reset(seed=s)[0]["task"] for s in seeds]


# -- videos ----------------------------------------------------------------------------------------------


def write_video(episodes: Sequence[Episode], path: str | Path, fps: int = 5, scale: int = 4, columns: int = 4) -> Path:
    """Tile the recorded ``episodes`` side by side, each captioned with what the agent was told and
    framed green on success, red on failure; write a GIF or MP4 (by ``path``'s suffix)."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix not in (".gif", ".mp4"):
        raise ValueError(f"video path must end in .gif or .mp4, got {path.name}")
    recorded = [ep for ep in episodes if ep.frames]
    if not recorded:
        raise ValueError("no recorded frames; pass record=N to evaluate/rollouts")
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
