"""The lineage's results as numbers: per arm a (seeds, episodes) matrix of successes, its intervals, the pairwise
verdicts, the learning curves, and ``report.json`` (what report.md and the figures are drawn from).

``runs[label]`` is the list of one arm's training runs, one per seed: ``{"seed", "train": <train_policy's
result>, "points": [<the policy's ConditionResult at each curve point>]}``, the last point being the end of
training.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from bridge.analysis.bootstrap import Comparison, compare, interval
from recipes.lineage.presets import FILM_CNN

SCHEMA = 2  # 2: per-episode successes under "episode_success", as in an evaluation result
PACKAGES = ("bridge-lineage", "torch", "lightning", "timm", "numpy", "scipy", "datasets", "wandb")


def scores(runs: list[dict], point: int = -1) -> np.ndarray:
    """Successes of one arm at one curve point, a (seeds, episodes) matrix of 0/1."""
    return np.array([run["points"][point].episode_success for run in runs], dtype=np.float64)


def pairs(labels: list[str], timm_label: str) -> list[tuple[str, str]]:
    """The comparisons the report makes: pretrained (frozen, fine-tuned) vs scratch, ResNet vs ViT, each vs timm
    and vs the FiLM-CNN."""
    wanted = [
        ("ResNet frozen", "ResNet scratch"),
        ("ResNet fine-tuned", "ResNet scratch"),
        ("ResNet fine-tuned", "ResNet frozen"),
        ("ViT fine-tuned", "ViT scratch"),
        ("ViT-Tiny timm weights", "ViT scratch"),
        ("ResNet scratch", "ViT scratch"),
        ("ResNet fine-tuned", "ViT fine-tuned"),
        ("Hybrid fine-tuned", "ViT fine-tuned"),
        ("Hybrid fine-tuned", "ResNet fine-tuned"),
        ("ResNet scratch", FILM_CNN),
        ("ViT scratch", FILM_CNN),
    ]
    wanted += [(label, timm_label) for label in labels if label != timm_label]
    return [(a, b) for a, b in wanted if a in labels and b in labels]


def comparisons(runs: dict[str, list[dict]], timm_label: str) -> list[Comparison]:
    return [compare(a, scores(runs[a]), b, scores(runs[b])) for a, b in pairs(list(runs), timm_label)]


def first_scenes(point, per_seed: int) -> list[int]:
    """A curve point's successes on the first ``per_seed`` scenes of each evaluation seed."""
    return [x for group in np.array_split(point.episode_success, point.seeds) for x in group[:per_seed]]


def curve(runs: list[dict]) -> list[dict]:
    """One arm's learning curve: per point the mean step, frames and training compute, and the success interval.

    Every point on the same scenes: the earlier points may run fewer episodes per evaluation seed (``curve_episodes``)
    than the last, and the first scenes of a seed are not as hard as the rest, so the last point is read on those
    first scenes too (the table's figure reads all of them)."""
    per_seed = min(len(p.episode_success) // p.seeds for run in runs for p in run["points"])
    result = []
    for i in range(len(runs[0]["points"])):
        steps = [run["train"]["curve"][i]["step"] for run in runs]
        frames = [step * run["train"]["frames_per_step"] for step, run in zip(steps, runs)]
        success = interval(np.array([first_scenes(run["points"][i], per_seed) for run in runs], dtype=np.float64))
        result.append({
            "step": float(np.mean(steps)), "frames": float(np.mean(frames)),
            "train_macs": float(np.mean(frames)) * runs[0]["train"]["encoder_macs"], **asdict(success),
        })  # fmt: skip
    return result


def cpu_name() -> str | None:
    """The CPU's model name (platform.processor() is empty on Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def environment(processes: int = 1) -> dict:
    """What the numbers depend on besides the command: packages, threads, machine, commit. ``processes``: how many
    training runs went side by side, each with one thread (1: one at a time, with all of torch's threads)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["torch"] = torch.__version__  # with its build: 2.5.1+cu124 and 2.5.1+cpu round differently
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
    except OSError:  # no git on the machine
        commit = None
    return {
        "packages": versions, "threads": 1 if processes > 1 else torch.get_num_threads(),
        "side_by_side": processes, "git_commit": commit,
        "machine": platform.machine(), "processor": cpu_name(), "system": platform.system(),
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }  # fmt: skip


def report_json(
    preset_name: str,
    settings: dict,
    seeds: list[int],
    arms: list,
    runs: dict[str, list[dict]],
    baselines: dict,
    verdicts: list[Comparison],
    processes: int = 1,
) -> dict:
    """Everything report.md says, as data: per arm, seed and curve point the raw counts; the verdicts; the setting."""
    entries = []
    for arm in arms:
        first = runs[arm.label][0]["train"]
        entries.append({
            "label": arm.label, "encoder": arm.encoder, "init": arm.init, "frozen": arm.freeze,
            "encoder_params": first["encoder_params"], "encoder_macs": first["encoder_macs"],
            "success": asdict(interval(scores(runs[arm.label]))),
            "runs": [
                {"seed": run["seed"], "points": [
                    {"step": c["step"], "frames": c["step"] * run["train"]["frames_per_step"], "seconds": c["seconds"],
                     "train_macs": c["step"] * run["train"]["frames_per_step"] * first["encoder_macs"],
                     "successes": p.successes, "episodes": p.episodes, "episode_success": p.episode_success}
                    for c, p in zip(run["train"]["curve"], run["points"])
                ]}
                for run in runs[arm.label]
            ],
        })  # fmt: skip
    return {
        "schema": SCHEMA,
        "preset": preset_name,
        "settings": settings,
        "seeds": seeds,
        "environment": environment(processes),
        "arms": entries,
        "baselines": {
            name: {"successes": r.successes, "episodes": r.episodes, "episode_success": r.episode_success}
            for name, r in baselines.items()
        },  # fmt: skip
        "comparisons": [
            {
                "a": c.a,
                "b": c.b,
                "difference": asdict(c.difference),
                "probability_of_improvement": c.probability_of_improvement,
                "verdict": c.verdict,
            }
            for c in verdicts
        ],  # fmt: skip
    }
