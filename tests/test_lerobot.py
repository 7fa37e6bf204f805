"""Demo sets against LeRobot itself: LeRobot reads what ``vla collect`` writes, and ``fit`` trains on what LeRobot
writes.

LeRobot is a test-time tool only, in a folder of its own beside the venv (``make install`` puts it there): its own
pins (torch < 2.11) do not fit the project's environment, so it runs in a subprocess with that folder on its path.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.cli import main
from bridge.vla.demos import load_demos

LEROBOT = Path(sys.prefix) / "lerobot-0.4.4"
INSTALL = f"{sys.executable} -m pip install --no-deps --target {LEROBOT} lerobot==0.4.4 accelerate av"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUIET = "--trainer.logger false --trainer.enable_progress_bar false --trainer.enable_model_summary false"
TINY_POLICY = (
    f"--config {CONFIGS}/vla_resnet.yaml {QUIET} --model.init_args.policy.image_size 16 "
    """--model.init_args.policy.encoder_kwargs '{"stem": "imagenet", "layers": [1], "widths": [8]}' """
    "--model.init_args.policy.dim 32 --model.init_args.policy.depth 1 --model.init_args.policy.num_heads 2 "
    "--model.init_args.policy.text_dim 16 --model.init_args.policy.text_layers 1 --model.init_args.warmup_steps 0 "
    "--data.init_args.batch_size 4 --data.init_args.val_fraction 0 --trainer.max_time null"
)
WORLD = {"image_size": 16, "num_objects": 1}


def run_lerobot(script: str, *args: str) -> None:
    """Run ``script`` with LeRobot importable, offline; fail with its stderr."""
    if not (LEROBOT / "lerobot").is_dir():
        message = f"LeRobot 0.4.4 is not installed in {LEROBOT}; make install does it, or: {INSTALL}"
        if os.environ.get("CI"):  # CI installs it: a missing install there is a broken build, not a skip
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "PYTHONPATH": str(LEROBOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


READ = """
import sys, json
import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset

ds = LeRobotDataset("local/demos", root=sys.argv[1])
items = [ds[i] for i in range(len(ds))]
np.savez(sys.argv[2], image=np.stack([(x["observation.image"].permute(1, 2, 0) * 255).round().numpy() for x in items]),
         state=np.stack([x["observation.state"].numpy() for x in items]),
         action=np.stack([x["action"].numpy() for x in items]),
         episode_index=[int(x["episode_index"]) for x in items], frame_index=[int(x["frame_index"]) for x in items])
json.dump({"tasks": [x["task"] for x in items], "fps": ds.fps, "episodes": ds.num_episodes,
           "stats": {k: v.tolist() for k, v in ds.meta.stats["action"].items()}}, open(sys.argv[3], "w"))
"""


def test_lerobot_reads_a_set_vla_collect_wrote(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = [f"{k}={v}" for k, v in WORLD.items()]
    main(["vla", "collect", "--episodes", "3", "--world-options", *options, "--out", "demos"])
    run_lerobot(READ, "demos", str(tmp_path / "seen.npz"), str(tmp_path / "seen.json"))
    ours, meta = load_demos("demos")
    seen, about = np.load(tmp_path / "seen.npz"), json.loads((tmp_path / "seen.json").read_text())
    assert about["episodes"] == 3 and about["fps"] == meta["fps"]
    assert np.array_equal(seen["image"], np.stack([np.asarray(im) for im in ours["observation.image"]]))
    assert np.array_equal(seen["state"], np.asarray(ours["observation.state"], dtype=np.float32))
    assert np.array_equal(seen["action"], np.asarray(ours["action"], dtype=np.float32))
    assert about["tasks"] == ours["task"] and len(set(about["tasks"])) > 1
    assert seen["episode_index"].tolist() == ours["episode_index"]
    assert seen["frame_index"].tolist() == ours["frame_index"]
    assert np.allclose(about["stats"]["min"], meta["stats"]["action"]["min"])


WRITE = """
import sys
import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset

features = {
    "observation.image": {"dtype": "image", "shape": (16, 16, 3), "names": ["height", "width", "channel"]},
    "observation.state": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
    "action": {"dtype": "float32", "shape": (2,), "names": ["dx", "dy"]},
}
ds = LeRobotDataset.create("local/made", fps=10, features=features, root=sys.argv[1], use_videos=False)
rng = np.random.default_rng(0)
for episode, task in enumerate(["go to the red circle", "move to the blue square", "go to the green triangle"]):
    for _ in range(6 + episode):
        ds.add_frame({"observation.image": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
                      "observation.state": rng.uniform(-1, 1, 2).astype(np.float32),
                      "action": rng.uniform(-0.5, 0.5, 2).astype(np.float32), "task": task})
    ds.save_episode()
ds.finalize()
"""


def test_fit_trains_on_a_set_lerobot_wrote(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_lerobot(WRITE, "made")
    assert not (tmp_path / "made" / ".bridge.json").exists()  # LeRobot's own folder, no bridge metadata in it

    def fit(world_options: dict, run: str) -> None:
        main(["fit", *shlex.split(TINY_POLICY), "--data.init_args.path", "made", "--data.init_args.episodes", "3",
              "--data.init_args.world_options", json.dumps(world_options), "--trainer.max_steps", "2",
              "--trainer.default_root_dir", run])  # fmt: skip

    fit(WORLD, "run")
    checkpoint = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2
    assert checkpoint["hyper_parameters"]["policy"]["world_options"]["image_size"] == 16  # the world it was named
    stats = json.loads((tmp_path / "made/meta/stats.json").read_text())  # LeRobot's statistics normalise the actions
    assert torch.allclose(checkpoint["state_dict"]["policy.action_norm.low"], torch.tensor(stats["action"]["min"]))
    # The same set does not fit a world of other frames, and says which to name.
    with pytest.raises(SystemExit, match=r"does not fit world reach: .*\[16, 16, 3\] \(world reach: \[64, 64, 3\]\)"):
        fit({}, "run2")
