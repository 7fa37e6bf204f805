"""``python -m bridge vla collect|eval|compare|export|worlds``: expert demonstrations, closed-loop evaluation of a
trained policy, arms of evaluations compared, a checkpoint as a ``save_pretrained`` folder, and the worlds there
are.

``register(subparsers)`` adds the ``vla`` command to bridge's argparse parser. Heavy imports (torch,
transformers, datasets, the worlds' simulators) happen inside the handlers, so ``python -m bridge --help``
stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from bridge.argtypes import non_negative_float, non_negative_int, positive_int
from bridge.errors import ConfigError
from bridge.vla.evaluation.closed_loop import CONDITIONS
from bridge.vla.evaluation.result import EvalResult

POLICY, EVALUATION = "policy", "evaluation"  # the kinds bridge marks an exported policy's and a results folder with


def register(subparsers) -> None:
    """Add the ``vla`` commands to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    vla = subparsers.add_parser("vla", help="VLA worlds: collect expert demos, evaluate a policy in closed loop")
    commands = vla.add_subparsers(dest="vla_command", metavar="<vla command>", required=True)
    _add_collect(commands)
    _add_eval(commands)
    p = commands.add_parser(
        "compare", help="arms of `vla eval` results: success intervals over runs and episodes, paired differences"
    )
    p.add_argument(
        "--arm", nargs="+", action="append", required=True, metavar=("NAME", "RESULTS"),
        help="an arm's name and its results.json files, one per training run; arms are paired file by file",
    )  # fmt: skip
    p.add_argument("--condition", default="policy", choices=CONDITIONS, help="the condition compared")
    p.add_argument("--out", default=None, help="also write the comparison to this JSON file")
    p.set_defaults(func=compare)

    p = commands.add_parser("export", help="a VLA checkpoint as a folder that Policy.from_pretrained loads")
    p.add_argument("--ckpt", required=True, help="a VLA run's checkpoint (runs/<name>/checkpoints/*.ckpt)")
    p.add_argument("--out", required=True, help="the folder (config.json, model.safetensors, tokenizer files)")
    p.add_argument("--overwrite", action="store_true", help="replace a policy folder exported before at --out")
    p.set_defaults(func=export)

    p = commands.add_parser("worlds", help="the registered worlds (with BRIDGE_PLUGINS' too)")
    p.set_defaults(func=worlds)


def _add_collect(commands) -> None:
    p = commands.add_parser("collect", help="record a world's expert episodes as a LeRobot v3 dataset")
    p.add_argument("--world", default="reach", help="the world's name (python -m bridge vla worlds lists them)")
    p.add_argument(
        "--world-options", nargs="*", default=[], metavar="KEY=VALUE", help="the world's options, e.g. image_size=32"
    )
    p.add_argument("--episodes", type=positive_int, default=1000, help="successful episodes to record")
    p.add_argument("--out", required=True, help="folder for the dataset (LeRobot's v3 layout: meta/, data/)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="episode i uses seed + i")
    p.add_argument(
        "--noise", type=non_negative_float, default=None,
        help="the expert's action noise (default: the world's): Reach's std per axis, BabyAI's chance of a random move",
    )  # fmt: skip
    p.add_argument("--num-envs", type=positive_int, default=16, help="episodes stepped together, per process")
    p.add_argument("--workers", type=positive_int, default=None, help="processes that collect (default: one per core)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.set_defaults(func=collect)


def _add_eval(commands) -> None:
    p = commands.add_parser(
        "eval", help="closed-loop success of a trained policy, with expert, random and language ablations"
    )
    p.add_argument("--ckpt", required=True, help="a VLA run's checkpoint (runs/<name>/checkpoints/*.ckpt) or a "
                   "folder written by Policy.save_pretrained")  # fmt: skip
    p.add_argument("--world", default=None, help="the world to act in (default: the policy's)")
    p.add_argument(
        "--world-options", nargs="*", default=[], metavar="KEY=VALUE", help="options over the policy's world's"
    )
    p.add_argument("--episodes", type=positive_int, default=50, help="episodes per evaluation seed")
    p.add_argument("--seeds", type=positive_int, default=3, help="evaluation seeds (each a fresh set of scenes)")
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    p.add_argument(
        "--paraphrases", choices=("train", "heldout", "all"), default="all",
        help="instruction phrasings, in worlds that have them: those seen in training, those held out, or both",
    )  # fmt: skip
    p.add_argument(
        "--scenes", choices=("evaluation", "validation"), default="evaluation",
        help="the world's evaluation scenes, the ones results are reported on, or its validation scenes, to choose "
        "settings by without touching them",
    )  # fmt: skip
    p.add_argument(
        "--num-envs", type=positive_int, default=50, help="episodes stepped (and policy queries batched) together"
    )
    p.add_argument(
        "--temperature", type=non_negative_float, default=0.0,
        help="0: the most likely action, as BabyAI's validation; T > 0: actions drawn from softmax(logits / T), "
        "seeded (1: the distribution the policy was trained to fit)",
    )  # fmt: skip
    p.add_argument("--video", choices=("gif", "mp4", "none"), default="gif")
    p.add_argument("--record", type=non_negative_int, default=8, help="episodes per condition in each video")
    p.add_argument(
        "--out", default=None, help="results folder; default <run dir>/eval/<checkpoint name>[_temperature<T>]"
    )
    p.add_argument(
        "--wandb", action=argparse.BooleanOptionalAction, default=True, help="log to W&B (offline by default)"
    )
    p.set_defaults(func=evaluate_checkpoint)


def parse_options(pairs: list[str]) -> dict:
    """``["image_size=32", "paraphrases=all"]`` -> ``{"image_size": 32, "paraphrases": "all"}`` (JSON, else text)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--world-options takes KEY=VALUE pairs, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def collect(args: argparse.Namespace) -> Path:
    from bridge.runs import check_writable
    from bridge.vla.demos import DEMOS, collect_demos, save_demos
    from bridge.vla.worlds import get_world

    out = Path(args.out)
    check_writable(out, DEMOS, args.overwrite)  # before minutes of collection, not after
    world = get_world(args.world, **parse_options(args.world_options))
    dataset, meta = collect_demos(
        world, args.episodes, seed=args.seed, noise=args.noise, num_envs=args.num_envs, workers=args.workers
    )
    save_demos(dataset, meta, out, overwrite=args.overwrite)
    print(
        f"{meta['num_episodes']} episodes of {meta['world']}, {meta['num_frames']} frames -> {out} "
        f"(expert failures dropped: {meta['failed_episodes']})"
    )
    return out


def compare(args: argparse.Namespace) -> dict:
    """Print each arm's success interval and each pair's difference with its verdict; return them as data."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from bridge.vla.evaluation.arms import compare_arms

    if args.out:
        _check_comparison_out(Path(args.out))  # before the results are read
    arms = {}
    for name, *files in args.arm:
        if not files or name in arms:
            raise ConfigError(f"--arm {name}: give each arm a new name and at least one results.json after it")
        arms[name] = [Path(f) for f in files]
    intervals, comparisons = compare_arms(arms, args.condition)
    console = Console()
    table = Table(title=f"{args.condition} success: mean [95% CI] over runs and episodes")
    for column in ("arm", "runs", "success", "95% CI"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for name, i in intervals.items():
        table.add_row(name, str(len(arms[name])), f"{i.mean:.1%}", f"{i.low:.1%} - {i.high:.1%}")
    console.print(table)
    for c in comparisons:
        d = c.difference
        console.print(
            f"{c.a} - {c.b}: {d.mean:+.1%} [{d.low:+.1%}, {d.high:+.1%}], P({c.a} > {c.b}) = "
            f"{c.probability_of_improvement:.2f}: {c.verdict}"
        )
    summary = {
        "condition": args.condition,
        "arms": {name: {"results": [str(f) for f in arms[name]], **asdict(i)} for name, i in intervals.items()},
        "comparisons": [asdict(c) for c in comparisons],
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2))
    return summary


COMPARISON_KEYS = {"condition", "arms", "comparisons"}  # what `vla compare --out` writes


def _check_comparison_out(path: Path) -> None:
    """``--out`` is new or a comparison written before: never a file of the user's (a YAML, say) turned to JSON."""
    from bridge.runs import check_folder_path

    check_folder_path(path.parent, "--out")
    if not path.exists():
        return
    try:
        ours = not path.is_dir() and COMPARISON_KEYS <= set(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        ours = False
    if not ours:
        raise ConfigError(
            f"--out {path} already exists and is not a comparison `vla compare` wrote; refusing to replace it. "
            "Choose another --out (a new .json file)"
        )


def export(args: argparse.Namespace) -> Path:
    import os

    from bridge.runs import check_writable, replace_folder
    from bridge.vla.policy.loading import load_policy

    out = Path(args.out)
    check_writable(out, POLICY, args.overwrite)
    policy = load_policy(_existing(args.ckpt))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # a whole folder or the old one, never half of either
    policy.save_pretrained(tmp)
    replace_folder(tmp, out, POLICY)
    print(f"{args.ckpt} -> {out}")
    return out


def worlds(args: argparse.Namespace) -> list[str]:
    from bridge.vla.worlds.registry import list_worlds

    names = list_worlds()
    print("\n".join(names))
    return names


def _existing(path: str) -> Path:
    """A path named on the command line, refused up front when it is not there."""
    if not Path(path).exists():
        raise ConfigError(f"{path} does not exist; pass a VLA run's checkpoint or a saved policy folder")
    return Path(path)


def evaluate_checkpoint(args: argparse.Namespace) -> EvalResult:
    """Evaluate, print a table, write results.json and videos under --out, log to W&B; return the result."""
    from rich.console import Console

    from bridge.runs import check_writable, mark_folder
    from bridge.tracking import wandb_settings
    from bridge.vla.evaluation.closed_loop import evaluate
    from bridge.vla.evaluation.video import write_video
    from bridge.vla.policy.language import unknown_words
    from bridge.vla.policy.loading import load_policy
    from bridge.vla.worlds import get_world

    ckpt = _existing(args.ckpt)
    tracking = wandb_settings() if args.wandb else None  # WANDB_MODE=online without a key: said before the work
    suffix = f"_temperature{args.temperature:g}" if args.temperature else ""  # beside the argmax results, not over
    out = Path(args.out) if args.out else _run_dir(ckpt) / "eval" / f"{ckpt.stem}{suffix}"
    # Before minutes of evaluation: a folder of the user's is never written into; an earlier evaluation's is.
    check_writable(out, EVALUATION, overwrite=True, flag=None)
    policy = load_policy(ckpt)
    c = policy.config
    options = c.world_options if args.world in (None, c.world) else {}
    world = get_world(args.world or c.world, **{**options, **parse_options(args.world_options)})
    if "paraphrases" in world.options:
        world = world.replace(paraphrases=args.paraphrases)
    policy.check_world(world)
    record = args.record if args.video != "none" else 0
    result, episodes = evaluate(
        policy.as_agent(args.temperature), world, episodes=args.episodes, seeds=args.seeds, num_envs=args.num_envs,
        conditions=args.conditions, record=record, scenes=args.scenes,
    )  # fmt: skip
    result.checkpoint, result.temperature = str(ckpt), args.temperature
    console = Console()
    console.print(results_table(result, f"{ckpt} in {world.name} on {args.episodes} x {args.seeds} episodes"))
    unknown = sorted({w for ep in next(iter(episodes.values())) for w in unknown_words(policy.text.tokenizer, ep.task)})
    if unknown:
        console.print(f"words the tokenizer never saw (read as its unknown token): {', '.join(unknown)}")
    mark_folder(out, EVALUATION)
    for name, eps in episodes.items() if record else ():
        result.videos[name] = str(write_video(eps[:record], out / f"{name}.{args.video}"))
    result.to_json(out / "results.json")
    console.print(f"results and videos in {out}")
    if tracking is not None:
        _log_wandb(result, out, ckpt, tracking)
    return result


def results_table(result: EvalResult, title: str):
    """A rich table of every condition: success, its interval, per seed, steps to success and episode length."""
    from rich.table import Table

    told = f", {result.world_options['paraphrases']} paraphrases" if "paraphrases" in result.world_options else ""
    drawn = f", actions drawn at temperature {result.temperature:g}" if result.temperature else ""
    table = Table(title=f"{title}{told}{drawn}")
    # "episode length" averages every episode (failures run to the step limit): the policy's against the expert's.
    for column in ("condition", "success", "95% CI", "per seed", "steps to success", "episode length"):
        table.add_column(column, justify="left" if column == "condition" else "right")
    for r in result.conditions.values():
        steps = "-" if math.isnan(r.mean_steps_to_success) else f"{r.mean_steps_to_success:.1f}"
        per_seed = " ".join(f"{s:.0%}" for s in r.per_seed)
        ci95 = f"{r.ci95[0]:.1%} - {r.ci95[1]:.1%}"
        table.add_row(r.name, f"{r.success_rate:.1%}", ci95, per_seed, steps, f"{r.mean_steps:.1f}")
    return table


def _run_dir(ckpt: Path) -> Path:
    """runs/<name>/checkpoints/best.ckpt -> runs/<name>; a checkpoint or saved policy elsewhere -> its folder."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def _log_wandb(result: EvalResult, out: Path, ckpt: Path, tracking: dict) -> None:
    import wandb

    run = wandb.init(
        name=f"eval-{_run_dir(ckpt).name}-{ckpt.stem}", job_type="eval", dir=str(out), **tracking,
        tags=[f"world:{result.world}"],
        config={"checkpoint": result.checkpoint, "world": result.world, "world_options": result.world_options,
                "episodes": len(result.episode_seeds), "temperature": result.temperature},
    )  # fmt: skip
    columns = ["condition", "success_rate", "ci95_low", "ci95_high", "mean_steps_to_success", "mean_steps"]
    table = wandb.Table(columns=columns)
    for name, r in result.conditions.items():
        steps = None if math.isnan(r.mean_steps_to_success) else r.mean_steps_to_success
        table.add_data(name, r.success_rate, *r.ci95, steps, r.mean_steps)
        run.summary[f"eval/{name}/success"] = r.success_rate
    videos = {f"eval/{name}/rollouts": wandb.Video(path) for name, path in result.videos.items()}
    run.log({"eval/results": table, **videos})
    run.finish()
