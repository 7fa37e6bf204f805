"""The lineage's report: tables of every policy's closed-loop success over its seeds and of the pairwise verdicts,
a bar chart, learning curves, and the same as W&B tables and images. The numbers come from report_data.py.

``baselines`` maps the expert and random actions to their :class:`~bridge.vla.evaluation.result.ConditionResult`.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from bridge.analysis.plots import plot_bars, plot_curves
from bridge.analysis.tables import markdown_table
from bridge.errors import ConfigError
from bridge.tracking import wandb_settings
from bridge.vla.evaluation.result import ConditionResult

BASELINES = (("expert", "ceiling"), ("random", "floor"))
CURVE_AXES = {"step": "optimiser steps", "train_macs": "training compute (encoder MACs x frames seen)"}


def percent(low: float, mean: float, high: float, sign: str = "") -> str:
    return f"{100 * mean:{sign}.0f}% [{100 * low:{sign}.0f}, {100 * high:{sign}.0f}]"


def success_cell(entry: dict) -> str:
    """A ``report.json`` interval (mean, low, high) as ``63% [53, 72]``."""
    return percent(entry["low"], entry["mean"], entry["high"])


def baseline_cell(result: ConditionResult) -> str:
    """A baseline's Wilson interval over the episodes (the expert and random actions are not trained: no seeds)."""
    return percent(result.ci95[0], result.success_rate, result.ci95[1])


def threads(env: dict) -> str:
    if env.get("side_by_side", 1) > 1:
        return f"{env['side_by_side']} runs side by side with 1 thread each"
    return f"{env['threads']} threads"


def number(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3f}"  # no action MAE for discrete actions


def mean_of(runs: list[dict], key: str) -> float:
    return float(np.mean([run["train"][key] for run in runs]))


CAPACITY_GAP = 3  # encoders further apart than this in params or MACs are said to be


def capacity_notes(arms: list[dict]) -> list[str]:
    """A line for each pair of encoders more than 3x apart in params or MACs: their comparison is also one of size."""
    notes, seen = [], {}
    for a in arms:
        seen.setdefault((a["encoder"], a["encoder_params"], a["encoder_macs"]), a["label"])
    encoders = list(seen.items())
    for i, ((_, params_a, macs_a), a) in enumerate(encoders):
        for (_, params_b, macs_b), b in encoders[i + 1 :]:
            params, macs = max(params_a, params_b) / min(params_a, params_b), max(macs_a, macs_b) / min(macs_a, macs_b)
            if max(params, macs) > CAPACITY_GAP:
                notes.append(f"- {a} and {b} differ {params:.1f}x in params and {macs:.1f}x in MACs.")
    return notes


def report(preset_name: str, data: dict, runs: dict[str, list[dict]], baselines: dict, pretrained: dict) -> str:
    """``data``: the report.json dictionary; ``runs``: per arm label its training runs (see report_data.py)."""
    header = ["encoder", "init", "params", "MACs", "train s", "images/s", "success [95% CI]", "action MAE"]
    table = [
        [a["label"], a["init"], f"{a['encoder_params'] / 1e6:.2f} M", f"{a['encoder_macs'] / 1e6:.1f} M",
         f"{mean_of(runs[a['label']], 'train_seconds'):.0f}", f"{mean_of(runs[a['label']], 'images_per_second'):.0f}",
         success_cell(a["success"]), number(mean_of(runs[a['label']], 'val_action_mae'))]
        for a in data["arms"]
    ]  # fmt: skip
    table += [[name, role, "", "", "", "", baseline_cell(baselines[name]), ""] for name, role in BASELINES]
    verdicts = markdown_table(
        ["A", "B", "A - B [95% CI]", "P(A > B)", "verdict"],
        [[c["a"], c["b"], percent(c["difference"]["low"], c["difference"]["mean"], c["difference"]["high"], "+"),
          f"{c['probability_of_improvement']:.2f}", c["verdict"]] for c in data["comparisons"]],
    )  # fmt: skip
    notes = "\n".join(
        [f"- seed {seed}: {r['model']} pretrained on shapes: validation accuracy {r['val_acc']:.1%} "
         f"({r['seconds']:.0f} s)" for (_, seed), r in pretrained.items()] + capacity_notes(data["arms"])
    )  # fmt: skip
    env = data["environment"]
    episodes = baselines["expert"].episodes
    seeds = data["seeds"]
    world = data["settings"]["world"]
    world = "reach (held-out paraphrases included)" if world == "reach" else world
    return f"""# Lineage: encoders for the VLA policy, preset `{preset_name}`

Closed-loop success on the same {episodes} episodes of {world}, for every
policy trained with each of {len(seeds)} seeds ({", ".join(map(str, seeds))}). Success is the mean over seeds and
episodes with its 95% stratified-bootstrap interval (seeds and episodes resampled); the baselines are not trained,
so theirs is a Wilson interval over the episodes. Params and MACs are the encoder's, on one frame; train s and
images/s are per training run; action MAE is the validation error of the first predicted action, in action units.
Measured on {env["machine"]} ({env["processor"] or env["system"]}{", " + env["cuda"] if env["cuda"] else ""}),
{threads(env)}, torch {env["packages"]["torch"]}, commit {(env["git_commit"] or "unknown")[:12]}.

{markdown_table(header, table)}
Paired comparisons: the difference of mean success on the same episodes, seed i of A against seed i of B, with its
95% bootstrap interval; P(A > B) is the probability that a training run of A beats one of B. The verdict reads
only the interval: "better" or "worse" when it excludes zero, else "no detectable difference".

{verdicts}
{notes}
"""


README_START, README_END = "<!-- demo-results:start -->", "<!-- demo-results:end -->"
README_FIGURE = Path("docs/images/demo.png")  # beside the README


def check_readme(readme: Path) -> None:
    """Refuse a README without the block the report fills, before any work: the fix is to add the two markers."""
    text = readme.read_text() if readme.is_file() else None
    if text is None or README_START not in text or README_END not in text:
        raise ConfigError(
            f"--readme {readme} must be a file holding the lines {README_START} and {README_END}; add them where "
            "the main job's table belongs"
        )


def publish(readme: Path, data: dict, baselines: dict, figure: Path, source: Path) -> None:
    """Put the main job's answer in ``readme`` between its markers: each arm's success, the verdicts and the bar
    chart (copied to docs/images/demo.png beside it). The rest of the file is left as it is."""
    rows = [[a["label"], a["init"], f"{a['encoder_params'] / 1e6:.2f} M", f"{a['encoder_macs'] / 1e6:.1f} M",
             success_cell(a["success"])] for a in data["arms"]]  # fmt: skip
    rows += [[name, role, "", "", baseline_cell(baselines[name])] for name, role in BASELINES]
    table = markdown_table(["policy", "encoder init", "params", "MACs", "success [95% CI]"], rows)
    differences = [(c, c["difference"]) for c in data["comparisons"]]
    verdicts = "\n".join(
        f"- {c['a']} - {c['b']}: {percent(d['low'], d['mean'], d['high'], '+')}, **{c['verdict']}**"
        for c, d in differences
    )
    env, seeds = data["environment"], data["seeds"]
    machine = f"{env['processor'] or env['machine']}, {threads(env)}"
    block = (
        f"{README_START}\n{table}\n{verdicts}\n\n![closed-loop success of each policy]({README_FIGURE.as_posix()})\n\n"
        f"Preset `{data['preset']}`, seeds {', '.join(map(str, seeds))}, {machine}; "
        f"from `{source}`.\n{README_END}"
    )
    text = readme.read_text()
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    target = readme.parent / README_FIGURE
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(figure, target)
    readme.write_text(text[:start] + block + text[end:])


def success_chart(data: dict, baselines: dict, path: Path) -> Path:
    """Success of every policy (bootstrap interval) and baseline (Wilson interval), as a bar chart."""
    values, errors = {}, {}
    for a in data["arms"]:
        s = a["success"]
        values[a["label"]], errors[a["label"]] = 100 * s["mean"], (100 * s["low"], 100 * s["high"])
    for name, _ in BASELINES:
        b = baselines[name]
        values[name], errors[name] = 100 * b.success_rate, (100 * b.ci95[0], 100 * b.ci95[1])
    return plot_bars(values, errors, "closed-loop success (%)", path)


def curves_chart(curves: dict[str, list[dict]], path: Path) -> Path:
    percent_curves = {
        label: [{**p, "mean": 100 * p["mean"], "low": 100 * p["low"], "high": 100 * p["high"]} for p in points]
        for label, points in curves.items()
    }
    return plot_curves(percent_curves, CURVE_AXES, "closed-loop success (%)", path, log_x=("train_macs",))


def log_report(
    out: Path, wandb_run: dict, data: dict, runs: dict, baselines: dict, curves: dict, figures: dict,
    demos: Path | None = None,
) -> None:  # fmt: skip
    """The tables, the learning curves and the charts as one W&B run of the pipeline's group (``wandb_run``: its
    group, job type, config and tags); ``demos``: the demo set too, as a dataset artifact."""
    import wandb

    run_config = {**wandb_run["config"], "seeds": data["seeds"], "settings": data["settings"]}
    run = wandb.init(name="report", dir=str(out), group=wandb_run["group"], job_type=wandb_run["job_type"],
                     tags=wandb_run["tags"], config=run_config, **wandb_settings())  # fmt: skip
    columns = ["encoder", "init", "encoder_params", "encoder_macs", "train_seconds", "images_per_second",
               "success", "ci95_low", "ci95_high", "val_action_mae"]  # fmt: skip
    table = wandb.Table(columns=columns)
    for a in data["arms"]:
        r = runs[a["label"]]
        table.add_data(
            a["label"], a["init"], a["encoder_params"], a["encoder_macs"], mean_of(r, "train_seconds"),
            mean_of(r, "images_per_second"), a["success"]["mean"], a["success"]["low"], a["success"]["high"],
            mean_of(r, "val_action_mae"),
        )  # fmt: skip
    for name, _ in BASELINES:
        b = baselines[name]
        table.add_data(name, "baseline", 0, 0, 0.0, 0.0, b.success_rate, *b.ci95, math.nan)
    verdicts = wandb.Table(columns=["a", "b", "difference", "low", "high", "probability_of_improvement", "verdict"])
    for c in data["comparisons"]:
        d = c["difference"]
        verdicts.add_data(c["a"], c["b"], d["mean"], d["low"], d["high"], c["probability_of_improvement"], c["verdict"])
    points = wandb.Table(columns=["encoder", "step", "frames", "train_macs", "success", "low", "high"])
    for label, curve in curves.items():
        for p in curve:
            points.add_data(label, p["step"], p["frames"], p["train_macs"], p["mean"], p["low"], p["high"])
    run.log({
        "lineage/results": table, "lineage/verdicts": verdicts, "lineage/curves": points,
        "lineage/success": wandb.Image(str(figures["success"])),
        "lineage/curves_figure": wandb.Image(str(figures["curves"])),
    })  # fmt: skip
    if demos is not None:
        artifact = wandb.Artifact(f"demos-{wandb_run['config']['world'].replace(':', '-')}", type="dataset")
        artifact.add_dir(str(demos))
        run.log_artifact(artifact)
    run.finish()
