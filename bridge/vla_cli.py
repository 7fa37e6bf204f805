"""``python -m bridge vla collect|eval``: expert demonstrations and closed-loop evaluation of a trained policy.

``register(subparsers)`` adds the ``vla`` command to bridge's argparse parser. Heavy imports (torch,
transformers, datasets) happen inside the handlers, so ``python -m bridge --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

CONDITIONS = ("policy", "blank", "shuffled", "expert", "random")  # bridge.vla.evaluate.CONDITIONS, without importing it


def register(subparsers) -> None:
    """Add ``vla collect`` and ``vla eval`` to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    vla = subparsers.add_parser("vla", help="the toy VLA world: collect expert demos, evaluate a policy in closed loop")
    commands = vla.add_subparsers(dest="vla_command", metavar="<vla command>", required=True)

    p = commands.add_parser(
        "collect", help="record scripted-expert episodes of bridge/Reach-v0 as a LeRobot-style dataset"
    )
    p.add_argument("--episodes", type=int, default=1000, help="successful episodes to record")
    p.add_argument("--out", required=True, help="folder for the dataset (datasets.save_to_disk) and its meta.json")
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    p.add_argument("--noise", type=float, default=0.1, help="std of the expert's action noise")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--num-objects", type=int, default=4)
    p.add_argument("--num-envs", type=int, default=16, help="episodes stepped together")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.set_defaults(func=collect)

    p = commands.add_parser(
        "eval", help="closed-loop success of a trained policy, with expert, random and language ablations"
    )
    p.add_argument("--ckpt", required=True, help="a VLAPolicy checkpoint (runs/<name>/checkpoints/*.ckpt)")
    p.add_argument("--episodes", type=int, default=50, help="episodes per evaluation seed")
    p.add_argument("--seeds", type=int, default=3, help="evaluation seeds (each a fresh set of scenes)")
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    p.add_argument(
        "--paraphrases", choices=("train", "heldout", "all"), default="all",
        help="instruction phrasings: those seen in training, those held out, or both",
    )  # fmt: skip
    p.add_argument("--num-envs", type=int, default=50, help="episodes stepped (and policy queries batched) together")
    p.add_argument("--video", choices=("gif", "mp4", "none"), default="gif")
    p.add_argument("--record", type=int, default=8, help="episodes per condition in each video")
    p.add_argument("--out", default=None, help="results folder; default <run dir>/eval/<checkpoint name>")
    p.add_argument(
        "--wandb", action=argparse.BooleanOptionalAction, default=True, help="log to W&B (offline by default)"
    )
    p.set_defaults(func=evaluate_checkpoint)


def collect(args: argparse.Namespace) -> Path:
    from bridge.vla.demos import collect_demos, save_demos

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:  # before minutes of collection, not after
        raise ValueError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    env = {"image_size": args.image_size, "num_objects": args.num_objects}
    dataset, meta = collect_demos(args.episodes, env, seed=args.seed, noise=args.noise, num_envs=args.num_envs)
    save_demos(dataset, meta, out, overwrite=args.overwrite)
    print(
        f"{meta['num_episodes']} episodes, {meta['num_frames']} frames -> {out} "
        f"(expert failures dropped: {meta['failed_episodes']})"
    )
    return out


def evaluate_checkpoint(args: argparse.Namespace) -> dict:
    """Evaluate, print a table, write results.json and videos under --out, log to W&B; return the results."""
    from rich.console import Console
    from rich.table import Table

    from bridge.lit.vla import load_policy
    from bridge.vla.evaluate import evaluate, write_video
    from bridge.vla.language import unknown_words

    ckpt = Path(args.ckpt)
    try:
        module = load_policy(ckpt)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from None
    policy = module.policy
    env = dict(module.hparams.get("world") or {"image_size": policy.config.image_size})
    env["paraphrases"] = args.paraphrases
    out = Path(args.out) if args.out else _run_dir(ckpt) / "eval" / ckpt.stem
    record = args.record if args.video != "none" else 0
    results, episodes = evaluate(
        policy.as_agent(), env, episodes=args.episodes, seeds=args.seeds, num_envs=args.num_envs,
        conditions=args.conditions, record=record,
    )  # fmt: skip

    table = Table(title=f"{ckpt} on {args.episodes} x {args.seeds} episodes ({args.paraphrases} paraphrases)")
    for column in ("condition", "success", "95% CI", "per seed", "steps to success"):
        table.add_column(column, justify="left" if column == "condition" else "right")
    for r in results.values():
        steps = "-" if math.isnan(r.mean_steps_to_success) else f"{r.mean_steps_to_success:.1f}"
        per_seed = " ".join(f"{s:.0%}" for s in r.per_seed)
        table.add_row(r.name, f"{r.success_rate:.1%}", f"{r.ci95[0]:.1%} - {r.ci95[1]:.1%}", per_seed, steps)
    console = Console()
    console.print(table)
    unknown = sorted({w for ep in next(iter(episodes.values())) for w in unknown_words(policy.text.tokenizer, ep.task)})
    if unknown:
        console.print(f"words the tokenizer never saw (read as its unknown token): {', '.join(unknown)}")

    out.mkdir(parents=True, exist_ok=True)
    videos = {}
    if record:
        for name, eps in episodes.items():
            videos[name] = write_video(eps[:record], out / f"{name}.{args.video}")
    summary = {
        "checkpoint": str(ckpt),
        "env": env,
        "episodes_per_seed": args.episodes,
        "seeds": args.seeds,
        "results": {
            name: {
                "success_rate": r.success_rate, "successes": r.successes, "episodes": r.episodes, "ci95": list(r.ci95),
                "per_seed": r.per_seed,
                "mean_steps_to_success": None if math.isnan(r.mean_steps_to_success) else r.mean_steps_to_success,
            }
            for name, r in results.items()
        },
        "videos": {name: str(path) for name, path in videos.items()},
    }  # fmt: skip
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    console.print(f"results and videos in {out}")
    if args.wandb:
        _log_wandb(summary, videos, out, ckpt)
    return summary


def _run_dir(ckpt: Path) -> Path:
    """runs/<name>/checkpoints/best.ckpt -> runs/<name>; a checkpoint elsewhere -> its folder."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def _log_wandb(summary: dict, videos: dict[str, Path], out: Path, ckpt: Path) -> None:
    import wandb

    from bridge.lit.lightning_cli import wandb_offline

    run = wandb.init(
        project="bridge", name=f"eval-{_run_dir(ckpt).name}-{ckpt.stem}", job_type="eval", dir=str(out),
        mode="offline" if wandb_offline() else "online", config={k: summary[k] for k in ("checkpoint", "env", "seeds")},
    )  # fmt: skip
    table = wandb.Table(columns=["condition", "success_rate", "ci95_low", "ci95_high", "mean_steps_to_success"])
    for name, r in summary["results"].items():
        table.add_data(name, r["success_rate"], *r["ci95"], r["mean_steps_to_success"])
        run.summary[f"eval/{name}/success"] = r["success_rate"]
    run.log(
        {"eval/results": table, **{f"eval/{name}/rollouts": wandb.Video(str(path)) for name, path in videos.items()}}
    )
    run.finish()
