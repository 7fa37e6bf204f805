"""``python -m bridge fit`` end to end, in real processes: configs, W&B files, resume after SIGKILL, DDP,
torchrun (one node and two nodes on localhost) and ``fabric run``."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from wandb_records import logged_config, logged_metrics, logged_summary

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = ["--trainer.max_epochs", "1", "--trainer.limit_val_batches", "2", "--trainer.log_every_n_steps", "1"]
DIGITS_TRAIN = 1257


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("hf-datasets")
    return {
        **os.environ,
        "HF_DATASETS_CACHE": str(cache),
        "WANDB_MODE": "offline",
        "PYTHONPATH": str(ROOT / "tests"),
        "OMP_NUM_THREADS": "1",
    }


def bridge_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bridge", *args]


def run(cmd: list[str], cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return result


def lenet(*extra: str) -> list[str]:
    return ["fit", "--config", str(ROOT / "configs/lenet5_digits.yaml"), *TINY, *extra]


def last_step(run_dir: Path) -> int:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["global_step"]


def wandb_file(run_dir: Path) -> Path:
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, f"expected one W&B run in {run_dir}, found {files}"
    return files[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fit_writes_checkpoints_config_and_an_offline_wandb_run(tmp_path, env):
    result = run(bridge_cmd(*lenet("--trainer.limit_train_batches", "5")), tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "lenet5_digits"
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} >= {"last.ckpt", "best.ckpt"}
    assert (run_dir / "config.yaml").is_file()
    assert not (tmp_path / "wandb").exists() and not (tmp_path / "lightning_logs").exists()  # all in the run dir
    record = wandb_file(run_dir)
    metrics = logged_metrics(record)
    assert len(metrics["train/loss"]) == 5 and math.isfinite(metrics["train/loss"][-1])
    assert "val/acc" in metrics and any(key.startswith("lr-AdamW") for key in metrics)
    config = logged_config(record)
    assert config["config"]["model"]["init_args"]["optimizer"]["class_path"] == "torch.optim.AdamW"
    assert Path(logged_summary(record)["best_checkpoint"]) == (run_dir / "checkpoints" / "best.ckpt").resolve()


def test_unknown_config_key_is_named(tmp_path, env):
    result = run(bridge_cmd(*lenet("--model.init_args.learning_rat", "0.1")), tmp_path, env)
    assert result.returncode != 0
    assert "learning_rat" in result.stderr and "Traceback" not in result.stderr


def test_run_killed_mid_epoch_resumes_from_its_last_checkpoint(tmp_path, env):
    args = lenet(
        "--trainer.limit_val_batches", "0", "--trainer.max_epochs", "1", "--checkpoint_every_n_steps", "3",
        # Slow enough that the second writer below starts, on a busy machine too, while this one still holds the lock.
        "--trainer.callbacks+=slow_callback.SlowSteps", "--trainer.callbacks.init_args.seconds", "4",
    )  # fmt: skip
    proc = subprocess.Popen(bridge_cmd(*args), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    run_dir = tmp_path / "runs" / "lenet5_digits"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (run_dir / "checkpoints" / "last.ckpt").exists() and last_step(run_dir) >= 6:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read()[-2000:]
    second = run(bridge_cmd(*lenet("--ckpt_path", "last")), tmp_path, env)  # a second writer on the busy folder
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert f"in use by pid {proc.pid}" in second.stderr
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = last_step(run_dir)  # loads: the checkpoint was not left half-written
    assert 6 <= killed_at < math.ceil(DIGITS_TRAIN / 64)

    fresh = run(bridge_cmd(*lenet()), tmp_path, env)  # a new run never writes into another run's folder
    assert fresh.returncode == 1 and "resume it with --ckpt_path last" in fresh.stderr
    assert last_step(run_dir) == killed_at

    result = run(bridge_cmd(*lenet("--trainer.limit_val_batches", "0", "--ckpt_path", "last")), tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Restoring states from the checkpoint" in result.stderr + result.stdout
    assert last_step(run_dir) == math.ceil(DIGITS_TRAIN / 64)  # finished the epoch it was killed in


def _assert_two_shards(run_dir: Path) -> None:
    # Each of the two ranks saw its own half of the data: one epoch is half as many steps.
    assert last_step(run_dir) == math.ceil(DIGITS_TRAIN / 2 / 64)
    metrics = logged_metrics(wandb_file(run_dir))  # one W&B run for both processes
    assert "val/acc" in metrics


DDP = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]


def test_ddp_on_two_cpu_processes(tmp_path, env):
    # A time budget (far off) makes cosine_budget read the clock on every step, one broadcast the ranks must share.
    budget = ["--model.init_args.lr_schedule", "cosine_budget", "--trainer.max_time", "00:00:10:00"]
    result = run(bridge_cmd(*lenet(*DDP, *budget)), tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_two_shards(tmp_path / "runs" / "lenet5_digits")


def test_torchrun_two_processes(tmp_path, env):
    cmd = [str(BIN / "torchrun"), "--nproc-per-node", "2", f"--master-port={free_port()}", "-m", "bridge", *lenet(*DDP)]
    result = run(cmd, tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_two_shards(tmp_path / "runs" / "lenet5_digits")


def test_torchrun_two_nodes_on_localhost(tmp_path, env):
    port = free_port()
    args = lenet("--trainer.accelerator", "cpu", "--trainer.num_nodes", "2", "--trainer.devices", "1",
                 "--trainer.strategy", "ddp")  # fmt: skip

    def node(rank: int) -> subprocess.Popen:
        cmd = [str(BIN / "torchrun"), "--nnodes", "2", "--nproc-per-node", "1", f"--node-rank={rank}",
               "--master-addr", "127.0.0.1", f"--master-port={port}", "-m", "bridge", *args]  # fmt: skip
        return subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    nodes = [node(rank) for rank in (0, 1)]
    errors = [node.communicate(timeout=300)[1] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    _assert_two_shards(tmp_path / "runs" / "lenet5_digits")


def test_fabric_run_launcher(tmp_path, env):
    cmd = [str(BIN / "fabric"), "run", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
           f"--main-port={free_port()}", str(ROOT / "bridge" / "__main__.py"), *lenet(*DDP)]  # fmt: skip
    result = run(cmd, tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_two_shards(tmp_path / "runs" / "lenet5_digits")


@pytest.mark.parametrize("accelerator", ["gpu", "cpu"])
def test_more_devices_than_exist_is_a_clear_error(tmp_path, env, accelerator):
    devices = str((os.cpu_count() or 1) + 2)
    result = run(bridge_cmd(*lenet("--trainer.accelerator", accelerator, "--trainer.devices", devices)), tmp_path, env)
    assert result.returncode != 0
    assert "error:" in result.stderr and "Traceback" not in result.stderr


DEGRADATION = ["run", "degradation", "--only", "ResNet-20", "--epochs", "1", *DDP]


@pytest.mark.parametrize("launcher", ["torchrun", "fabric run"])
def test_a_recipe_under_a_launcher_runs_one_shard_per_rank(tmp_path, env, launcher):
    if launcher == "torchrun":
        cmd = [str(BIN / "torchrun"), "--nproc-per-node", "2", f"--master-port={free_port()}", "-m", "bridge"]
    else:
        cmd = [str(BIN / "fabric"), "run", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
               f"--main-port={free_port()}", str(ROOT / "bridge" / "__main__.py")]  # fmt: skip
    result = run([*cmd, *DEGRADATION], tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "runs" / "degradation" / "cpu"
    # One epoch of the recipe's batches of 32 over half the digits each, recorded once (rank 0) in one W&B run.
    assert max(logged_metrics(wandb_file(out))["trainer/global_step"]) + 1 == math.ceil(DIGITS_TRAIN / 2 / 32)
    assert list(json.loads((out / "curves.json").read_text())) == ["ResNet-20"]
