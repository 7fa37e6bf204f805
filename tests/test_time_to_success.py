"""benchmarks/time_to_success.py: the lean reference learns and acts in the world's units, times are interpolated
between points, and a run of both sides on the clock gives each the same points on the same episodes."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.vla.demos import collect_demos, save_demos
from bridge.vla.worlds import get_world

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from lean_loop import LeanLoop, Words  # noqa: E402
from time_to_success import main, time_to  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def points(*pairs: tuple[float, float]) -> list[dict]:
    return [{"seconds": s, "success": [1] * round(100 * rate) + [0] * (100 - round(100 * rate))} for s, rate in pairs]


def test_time_to_a_success_is_interpolated_between_points_and_nan_when_never_reached():
    curve = points((10, 0.2), (20, 0.6), (30, 0.9))
    assert time_to(curve, 0.4) == pytest.approx(15.0)
    assert time_to(curve, 0.9) == pytest.approx(30.0)
    assert time_to(curve, 0.1) == pytest.approx(5.0)  # from (0 s, 0%) to the first point
    assert math.isnan(time_to(curve, 0.95))


def test_words_map_unknown_words_to_one_id_and_pad_short_instructions():
    words = Words(get_world("reach"))
    ids = words(["go to the red circle", "approach the red circle"])  # "approach" is a held-out verb
    assert ids.shape == (2, 5)
    assert ids[1, 0] == 1 and ids[1, -1] == 0 and (ids[0] > 1).all()


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory) -> tuple[str, object]:
    world = get_world("reach", image_size=32)
    path = save_demos(*collect_demos(world, 12, progress=False), tmp_path_factory.mktemp("demos") / "reach")
    return str(path), world


def test_the_lean_loop_lowers_its_loss_and_acts_inside_the_action_box(reach_demos):
    path, world = reach_demos
    loop = LeanLoop(path, world, seed=0, batch_size=32, width=16)
    with torch.no_grad():
        loop.model.eval()
        before = float(np.mean([loop.loss().item() for _ in range(4)]))
    loop.model.train()
    for _ in range(60):
        loop.step()
    with torch.no_grad():
        loop.model.eval()
        after = float(np.mean([loop.loss().item() for _ in range(4)]))
    assert after < 0.8 * before
    env = world.make_vec(3)
    obs, _ = env.reset(seed=[1, 2, 3])
    actions = loop.act(obs, {})
    env.close()
    assert actions.shape == (3, 2) and actions.dtype == np.float32
    assert (actions >= -1).all() and (actions <= 1).all()


def test_both_sides_train_on_the_clock_and_are_judged_on_the_same_episodes(tmp_path, capsys):
    demos = save_demos(*collect_demos(get_world("reach"), 6, progress=False), tmp_path / "demos")
    out = tmp_path / "points.json"
    main(["--config", str(ROOT / "configs" / "vla_resnet.yaml"), "--demos", str(demos), "--episodes", "6",
          "--seconds", "3", "--points", "2", "--seeds", "1", "--eval-episodes", "4", "--lean-batch", "16",
          "--lean-width", "16", "--out", str(out)])  # fmt: skip
    runs = json.loads(out.read_text())["runs"]
    for side in ("bridge", "lean"):
        (run,) = runs[side]
        assert len(run) == 2 and all(len(p["success"]) == 4 for p in run)
        assert 0 < run[0]["steps"] < run[1]["steps"] and 0 < run[0]["flops"] < run[1]["flops"]
        assert 1.5 <= run[0]["seconds"] < run[1]["seconds"]
    printed = capsys.readouterr().out
    assert "bridge - lean" in printed and "seconds to reach a success" in printed


def test_a_run_that_ends_at_max_steps_first_stands_at_the_marks_left(tmp_path):
    demos = save_demos(*collect_demos(get_world("reach"), 6, progress=False), tmp_path / "demos")
    out = tmp_path / "points.json"
    main(["--config", str(ROOT / "configs" / "vla_resnet.yaml"), "--demos", str(demos), "--episodes", "6",
          "--steps", "3", "--seconds", "8", "--points", "2", "--seeds", "1", "--eval-episodes", "2",
          "--lean-batch", "8", "--lean-width", "8", "--out", str(out)])  # fmt: skip
    (run,) = json.loads(out.read_text())["runs"]["bridge"]
    assert [p["steps"] for p in run] == [3, 3] and [p["seconds"] for p in run] == [4.0, 8.0]
