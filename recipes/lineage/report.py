"""The lineage's report: a Markdown table, a bar chart and a W&B table of every policy's closed-loop success."""

from __future__ import annotations

import math
from pathlib import Path

from bridge.analysis.plots import plot_bars
from bridge.analysis.tables import markdown_table
from bridge.tracking import wandb_offline

BASELINES = (("expert", "ceiling"), ("random", "floor"))


def rate(result: dict) -> float:
    """The success rate of a stored ``ConditionResult`` (its property does not survive ``asdict``)."""
    return result["successes"] / result["episodes"]


def success_cell(result: dict) -> str:
    low, high = result["ci95"]
    return f"{100 * rate(result):.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


def report(preset_name: str, rows: list[tuple], baselines: dict, pretrained: dict) -> str:
    """``rows``: (arm, training result, evaluation result) per policy; ``pretrained``: the pretraining results."""
    header = ["encoder", "init", "params", "MACs", "train s", "images/s", "success [95% CI]", "action MAE"]
    table = [
        [arm.label, arm.init, f"{t['encoder_params'] / 1e6:.2f} M", f"{t['encoder_macs'] / 1e6:.1f} M",
         f"{t['train_seconds']:.0f}", f"{t['images_per_second']:.0f}", success_cell(scored),
         f"{t['val_action_mae']:.3f}"]
        for arm, t, scored in rows
    ]  # fmt: skip
    table += [[name, role, "", "", "", "", success_cell(baselines[name]), ""] for name, role in BASELINES]
    notes = "\n".join(
        f"- {r['model']} pretrained on shapes: validation accuracy {r['val_acc']:.1%} in {r['seconds']:.0f} s"
        for r in pretrained.values()
    )
    episodes = baselines["expert"]["episodes"]
    return f"""# Lineage: encoders for the VLA policy, preset `{preset_name}`

Closed-loop success on the same {episodes} episodes of bridge/Reach-v0 (held-out paraphrases included).
Params and MACs are the encoder's, on one frame; images/s is training throughput; action MAE is
the validation error of the first predicted action against the expert's, in action units.

{markdown_table(header, table)}
{notes}
"""


def success_chart(rows: list[tuple], baselines: dict, path: Path) -> Path:
    """Success of every policy and baseline, with its 95% interval, as a bar chart."""
    scores = {arm.label: scored for arm, _, scored in rows} | {name: baselines[name] for name, _ in BASELINES}
    values = {label: 100 * rate(s) for label, s in scores.items()}
    errors = {label: (100 * s["ci95"][0], 100 * s["ci95"][1]) for label, s in scores.items()}
    return plot_bars(values, errors, "closed-loop success (%)", path)


def log_report(out: Path, group: str, rows: list[tuple], baselines: dict, figure: Path) -> None:
    """The table and the chart as one W&B run of the pipeline's group."""
    import wandb

    run = wandb.init(project="bridge", group=group, name="report", job_type="report", dir=str(out),
                     mode="offline" if wandb_offline() else "online")  # fmt: skip
    columns = ["encoder", "init", "encoder_params", "encoder_macs", "train_seconds", "images_per_second",
               "success", "ci95_low", "ci95_high", "val_action_mae"]  # fmt: skip
    table = wandb.Table(columns=columns)
    for arm, trained, scored in rows:
        table.add_data(
            arm.label, arm.init, trained["encoder_params"], trained["encoder_macs"], trained["train_seconds"],
            trained["images_per_second"], rate(scored), *scored["ci95"],
            trained["val_action_mae"],
        )  # fmt: skip
    for name, _ in BASELINES:
        table.add_data(name, "baseline", 0, 0, 0.0, 0.0, rate(baselines[name]), *baselines[name]["ci95"], math.nan)
    run.log({"lineage/results": table, "lineage/success": wandb.Image(str(figure))})
    run.finish()
