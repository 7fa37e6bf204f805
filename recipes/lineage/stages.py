"""The main job's five stages: pretrain, collect, train, evaluate, report.

Each stage is one function over a :class:`Lineage`, the run's plan. The work inside a stage is made of resumable
units (:func:`recipes.resumable.run_stage`, one folder each), submitted to the run's pool so that training runs
go side by side where the preset says so.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import Executor, Future
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bridge.vla.evaluation.result import ConditionResult, EvalResult
from recipes import kit
from recipes.lineage.presets import Arm, Preset, make_world, resnet, trunk, vit
from recipes.lineage.report import curves_chart, log_report, publish, success_chart
from recipes.lineage.report import report as report_text
from recipes.lineage.report_data import comparisons, curve, report_json
from recipes.lineage.work import (
    EVAL_RESULT,
    POLICY_RESULT,
    PRETRAIN_RESULT,
    demos,
    evaluate_baselines,
    evaluate_run,
    train_policy,
)
from recipes.lineage.work import collect as collect_work
from recipes.lineage.work import pretrain as pretrain_work
from recipes.resumable import output_to, run_stage, write_json


@dataclass
class Lineage:
    """One run of the main job: what it compares, on which seeds, where it writes and what runs its work."""

    name: str  # the preset's
    preset: Preset
    out: Path
    seeds: list[int]
    arms: list[Arm]
    trainer: dict  # the command line's --trainer.* settings, classes built
    trainer_config: dict  # the same as plain values, recorded in each stage's configuration
    pool: Executor
    processes: int = 1  # training runs side by side
    readme: Path | None = None  # a file whose demo-results block the report fills (make demo: README.md)
    verbose: bool = False  # the frameworks' output on the terminal too, not only in each stage's log.txt
    live: bool = False  # a live view shows the stages: they do not announce themselves
    log_artifacts: bool = False  # checkpoints and the demo set as W&B artifacts

    @property
    def output(self) -> dict:
        """How every stage's output is shown (:func:`recipes.resumable.run_stage`'s quiet and announce)."""
        return {"quiet": not self.verbose, "announce": not self.live}

    started: float = field(default_factory=time.perf_counter)

    @property
    def group(self) -> str:
        return f"lineage-{self.name}-{self.preset.world}"

    def wandb_run(self, job_type: str, **config) -> dict:
        """What W&B records of one of the run's runs: its group and job type, the preset and world (and the arm
        and seed given) in its config and its tags, and whether its checkpoints go up as artifacts."""
        config = {"preset": self.name, "world": self.preset.world, **config}
        tags = [f"{key}:{value}" for key, value in config.items()]
        return {"group": self.group, "job_type": job_type, "config": config, "tags": tags,
                "log_model": self.log_artifacts}  # fmt: skip


def frame_size(p: Preset) -> int:
    """The side of the frames the policies see: the world's own where it fixes it (BabyAI), not the preset's."""
    return make_world(p).observation.image_size


def pretrain(run: Lineage) -> dict[tuple[str, int], Future]:
    """Pretrain the ResNet (and the ViT when the preset asks for it) on shapes, once per seed, for the arms that
    start from them. Seed s's policies start from seed s's backbone, so pretraining's spread is counted too."""
    p = run.preset
    shared = {"image_size": p.image_size, "shapes": p.shapes, "epochs": p.pretrain_epochs, "batch_size": p.batch_size,
              "trainer": run.trainer_config}  # fmt: skip
    backbones = {"pretrain-resnet": (resnet(p.resnet_widths), 2e-3)}  # AdamW; the ViT wants a lower rate
    if p.pretrain_vit:
        backbones["pretrain-vit"] = (vit(p.image_size, p.vit_width), 1e-3)
    wanted = {arm.weights for arm in run.arms}
    return {
        (stage, seed): run.pool.submit(
            run_stage, run.out, f"{stage}-seed{seed}", {"model": model, "lr": lr, "seed": seed, **shared},
            pretrain_work(model, p, lr, seed, run.wandb_run("pretrain", model=stage, seed=seed), run.trainer),
            keys=PRETRAIN_RESULT, **run.output,
        )
        for seed in run.seeds
        for stage, (model, lr) in backbones.items()
        if stage in wanted
    }  # fmt: skip


def collect(run: Lineage) -> Path:
    """The expert demonstrations every policy trains on, collected here once so that no two runs collect them."""
    path = run.out / "demos"
    if kit.is_global_zero():
        p = run.preset
        config = {"world": p.world, "image_size": frame_size(p), "episodes": p.episodes}
        run_stage(run.out, "collect-demos", config, collect_work(p, path), cheap=True, keys=("path",), **run.output)
        demos(p, path).prepare_data()  # at once when the set is there; again if it was deleted since
    return path


def train(run: Lineage, backbones: dict[tuple[str, int], Future], path: Path) -> list[tuple[Arm, int, dict]]:
    """One policy per arm and seed: the same demonstrations, trunk, head, optimiser and steps; only the encoder
    and its first weights differ. A pretrained arm waits for its seed's backbone."""
    p = run.preset
    recipe = {"world": p.world, "image_size": frame_size(p), "episodes": p.episodes, "steps": p.steps,
              "batch_size": p.batch_size, "trunk": trunk(p), "lr": p.lr,
              "curve_points": p.curve_points,
              "trainer": run.trainer_config}  # fmt: skip
    training = {}
    for arm in sorted(run.arms, key=lambda a: a.weights in {s for s, _ in backbones}):  # scratch runs go first
        for seed in run.seeds:
            backbone = backbones.get((arm.weights, seed))
            weights = backbone.result()["checkpoint"] if backbone else arm.weights
            folder = "policy-" + arm.label.lower().replace(" ", "-").replace(":", "-") + f"-seed{seed}"
            config = {"arm": asdict(arm), "weights": weights, "seed": seed, **recipe}
            work = train_policy(
                arm, p, seed, path, weights, run.wandb_run("policy", arm=arm.label, seed=seed), run.trainer
            )
            training[arm.label, seed] = run.pool.submit(
                run_stage, run.out, folder, config, work, keys=POLICY_RESULT, **run.output
            )
    return [(arm, seed, training[arm.label, seed].result()) for arm in run.arms for seed in run.seeds]


def evaluate(run: Lineage, trained: list[tuple[Arm, int, dict]]) -> tuple[dict[str, list[dict]], dict]:
    """Every policy at every point of its learning curve, in closed loop on the same episodes, beside the
    expert and random actions. Returns per arm its runs (see report_data.py) and the baselines' results."""
    p = run.preset
    episodes = {"world": p.world, "image_size": frame_size(p), "episodes": p.eval_episodes, "seeds": p.eval_seeds}
    evaluations = [
        run.pool.submit(
            evaluate_run, p, result, episodes, run.output, run.wandb_run("policy", arm=arm.label, seed=seed)
        )
        for arm, seed, result in trained
    ]
    runs: dict[str, list[dict]] = {}
    for (arm, seed, result), points in zip(trained, evaluations):
        policy = [EvalResult.from_dict(point).conditions["policy"] for point in points.result()]
        runs.setdefault(arm.label, []).append({"seed": seed, "train": result, "points": policy})
    baselines = run_stage(
        run.out, "baselines", episodes, evaluate_baselines(p), cheap=True, keys=EVAL_RESULT, **run.output
    )
    return runs, EvalResult.from_dict(baselines).conditions


def report(
    run: Lineage, runs: dict[str, list[dict]], baselines: dict[str, ConditionResult], pretrained: dict
) -> dict[str, Path]:
    """Statistics (bootstrap intervals over seeds and episodes, paired verdicts), report.json, report.md, the
    figures and a W&B run; returns the files."""
    p, out = run.preset, run.out
    verdicts = comparisons(runs, p.timm.removeprefix("timm:"))
    data = report_json(run.name, asdict(p), run.seeds, run.arms, runs, baselines, verdicts, run.processes)
    write_json(out / "report.json", data)
    text = report_text(run.name, data, runs, baselines, pretrained)
    (out / "report.md").write_text(text)
    curves = {label: curve(r) for label, r in runs.items()}
    figures = {"success": success_chart(data, baselines, out / "success.png"),
               "curves": curves_chart(curves, out / "curves.png")}  # fmt: skip
    with output_to(out / "report.log") if not run.verbose else contextlib.nullcontext():
        log_report(
            out,
            run.wandb_run("report"),
            data,
            runs,
            baselines,
            curves,
            figures,
            demos=out / "demos" if run.log_artifacts else None,
        )
    if run.readme is not None:
        publish(run.readme, data, baselines, figures["success"], out / "report.md")
    print(text)
    minutes = (time.perf_counter() - run.started) / 60
    print(f"report: {out / 'report.md'}, {out / 'report.json'}  figures: {figures['success']}, "
          f"{figures['curves']}  ({minutes:.1f} min)")  # fmt: skip
    return {"report": out / "report.md", "data": out / "report.json", **figures}
