"""Figures for the lineage experiments (matplotlib, written to PNG; no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works on headless machines and in DDP workers
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_gradient_flow(results: dict[str, dict[str, dict[str, float]]], path: str | Path) -> Path:
    """One panel per phase (init, after k steps); per-block gradient norm against depth, one line per model."""
    phases = list(next(iter(results.values())))
    fig, axes = plt.subplots(1, len(phases), figsize=(6 * len(phases), 4), sharey=True, squeeze=False)
    for ax, phase in zip(axes[0], phases):
        for model, by_phase in results.items():
            norms = list(by_phase[phase].values())
            style = "--" if model.startswith("plain") or "noskip" in model else "-"
            ax.plot(range(1, len(norms) + 1), norms, style, marker=".", label=model)
        ax.set(title=f"gradient norm per block ({phase})", xlabel="block (input -> output)", yscale="log")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("||dL/dθ|| of the block")
    axes[0][-1].legend()
    return save(fig, path)


def plot_receptive_field(grad_map: Tensor, analytic: int | None, title: str, path: str | Path) -> Path:
    """Heat map of |d unit / d input| with the analytic receptive field drawn as a square."""
    fig, ax = plt.subplots(figsize=(5, 5))
    image = ax.imshow(grad_map.numpy(), cmap="magma")
    fig.colorbar(image, ax=ax, fraction=0.046, label="mean |d unit / d pixel|")
    if analytic is not None:
        # Centre the analytic square on the measured field (strides shift the centre unit off the image centre).
        rows, cols = grad_map.sum(dim=1).nonzero(), grad_map.sum(dim=0).nonzero()
        cy, cx = (rows.min() + rows.max()).item() / 2, (cols.min() + cols.max()).item() / 2
        ax.add_patch(plt.Rectangle((cx - analytic / 2, cy - analytic / 2), analytic, analytic, fill=False, ec="cyan",
                                   lw=1.5, label=f"analytic {analytic}x{analytic}"))  # fmt: skip
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    return save(fig, path)


def plot_error_curves(
    curves: dict[str, dict[str, list[float]]], panels: dict[str, list[str]], path: str | Path, x_label: str = "epoch"
) -> Path:
    """He et al. Figure 6 style: training error solid, held-out error dashed, one colour per model, one panel
    per group (e.g. CNN, Transformer). ``curves[model] = {"train": [...], "test": [...]}`` in percent, where
    "test" is whatever split was held out of training (the recipes measure their validation split)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (title, models) in zip(axes[0], panels.items()):
        for i, model in enumerate(models):
            colour = f"C{i}"
            epochs = range(1, len(curves[model]["train"]) + 1)
            ax.plot(epochs, curves[model]["train"], "-", color=colour, lw=2, label=f"{model} train")
            ax.plot(epochs, curves[model]["test"], "--", color=colour, lw=1, label=f"{model} validation")
        ax.set(title=title, xlabel=x_label, ylabel="error (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path)


def plot_bars(values: dict[str, float], errors: dict[str, tuple[float, float]] | None, ylabel: str, path) -> Path:
    """A bar per entry, with asymmetric error bars (e.g. a 95% interval) when given."""
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(values)), 4))
    names = list(values)
    heights = [values[n] for n in names]
    yerr = None
    if errors:
        # clamped at 0: an interval computed in floating point can end a hair inside its own estimate (p = 1)
        yerr = [
            [max(0.0, values[n] - errors[n][0]) for n in names],
            [max(0.0, errors[n][1] - values[n]) for n in names],
        ]
    ax.bar(names, heights, yerr=yerr, capsize=4, color=[f"C{i}" for i in range(len(names))])
    ax.set(ylabel=ylabel)
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def plot_curves(
    curves: dict[str, list[dict[str, float]]], axes: dict[str, str], ylabel: str, path: str | Path, log_x=()
) -> Path:
    """Learning curves with interval bands, one panel per x axis. ``curves[name]`` is a list of points, each with
    ``mean``, ``low``, ``high`` and a value for every key of ``axes`` (key -> axis label); keys in ``log_x`` get a
    logarithmic axis."""
    fig, panels = plt.subplots(1, len(axes), figsize=(6 * len(axes), 4), squeeze=False)
    for ax, (key, label) in zip(panels[0], axes.items()):
        for i, (name, points) in enumerate(curves.items()):
            x = [p[key] for p in points]
            ax.plot(x, [p["mean"] for p in points], "-o", color=f"C{i}", ms=3, label=name)
            ax.fill_between(x, [p["low"] for p in points], [p["high"] for p in points], color=f"C{i}", alpha=0.15)
        ax.set(xlabel=label, ylabel=ylabel, xscale="log" if key in log_x else "linear")
        ax.grid(alpha=0.3)
    panels[0][-1].legend(fontsize=8)
    return save(fig, path)
