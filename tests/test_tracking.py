"""W&B as its docs say: WANDB_MODE (disabled writes nothing, online needs a key, said before the work),
WANDB_PROJECT / WANDB_ENTITY / WANDB_BASE_URL, and what each run records (job type, group, config, tags, the
policy's closed-loop success, artifacts on request), read back from the offline run files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.errors import ConfigError
from bridge.tracking import wandb_settings
from bridge.vla.evaluation.result import EvalResult
from recipes.resumable import read_record
from wandb_records import logged_artifacts, logged_metrics, logged_run, logged_summary

ROOT = Path(__file__).resolve().parents[1]
ARM = "ResNet fine-tuned"  # the cheapest arm with a pretraining stage before it
MICRO = ["--image-size", "32", "--shapes", "48", "12", "12", "--pretrain-epochs", "1", "--episodes", "20",
         "--steps", "4", "--eval-episodes", "4", "--eval-seeds", "1", "--batch-size", "16", "--seeds", "1",
         "--curve-points", "2", "--arms", ARM, "--trainer.accelerator", "cpu", "--trainer.devices", "1"]  # fmt: skip
LENET = ["fit", "--config", str(ROOT / "configs/lenet5_digits.yaml"), "--trainer.max_epochs", "1",
         "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]  # fmt: skip


@pytest.fixture
def no_key(tmp_path, monkeypatch) -> Path:
    """No W&B key anywhere: an empty home, no WANDB_API_KEY, no NETRC, the default server."""
    for name in ("WANDB_API_KEY", "NETRC", "WANDB_BASE_URL", "WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_offline_by_default_into_the_project_bridge(no_key):
    assert wandb_settings() == {"project": "bridge", "entity": None, "mode": "offline"}


def test_project_and_entity_come_from_wandbs_variables(no_key, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "myproj")
    monkeypatch.setenv("WANDB_ENTITY", "myteam")
    monkeypatch.setenv("WANDB_MODE", "dryrun")  # wandb's old word for offline
    assert wandb_settings() == {"project": "myproj", "entity": "myteam", "mode": "offline"}


def test_a_key_saved_for_a_self_hosted_server_is_found(no_key, monkeypatch):
    (no_key / ".netrc").write_text("machine wandb.example.com\n  login user\n  password local-key\n")
    assert wandb_settings()["mode"] == "offline"  # a key for another host is not one for api.wandb.ai
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    assert wandb_settings()["mode"] == "online"
    monkeypatch.setenv("WANDB_MODE", "online")
    assert wandb_settings()["mode"] == "online"


@pytest.mark.parametrize("mode, fix", [("online", r"wandb login.*WANDB_MODE=offline"), ("upload", r"online, offline")])
def test_a_mode_that_cannot_run_is_refused(no_key, monkeypatch, mode, fix):
    monkeypatch.setenv("WANDB_MODE", mode)
    with pytest.raises(ConfigError, match=fix):
        wandb_settings()


@pytest.mark.parametrize(
    "argv",
    [["vla", "eval", "--ckpt", "{ckpt}", "--episodes", "1"], LENET,
     ["run", "degradation", "--epochs", "1", "--only", "ResNet-20", "--out", "deg"]],
    ids=["vla-eval", "fit", "run-degradation"],
)  # fmt: skip
def test_online_without_a_key_is_one_line_before_the_work(no_key, monkeypatch, argv):
    monkeypatch.chdir(no_key)
    monkeypatch.setenv("WANDB_MODE", "online")
    (no_key / "policy.ckpt").write_bytes(b"")  # never read: the W&B check comes first
    before = sorted(no_key.rglob("*"))
    with pytest.raises(SystemExit) as exit_:
        main([a.replace("{ckpt}", str(no_key / "policy.ckpt")) for a in argv])
    message = str(exit_.value.code)
    assert message.startswith("error: WANDB_MODE=online") and "wandb login" in message and "\n" not in message
    assert sorted(no_key.rglob("*")) == before  # nothing written, no training, no evaluation


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path_factory.mktemp("hf")), "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "offline", "WANDB_PROJECT": "myproj", "WANDB_ENTITY": "myteam"}  # fmt: skip
    env.pop("WANDB_API_KEY", None)
    return env


def bridge(cwd: Path, env: dict, *args: str, **changes: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "bridge", *args], cwd=cwd, env={**env, **changes},
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def run_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("wandb/offline-run-*/run-*.wandb"))


@pytest.fixture(scope="module")
def lineage(tmp_path_factory, env) -> Path:
    cwd = tmp_path_factory.mktemp("lineage")
    bridge(cwd, env, "run", "lineage", "--out", "out", "--log-artifacts", *MICRO)
    return cwd / "out"


def test_each_policy_run_carries_its_arm_seed_world_and_preset(lineage):
    (policy,) = lineage.glob("policy-*-seed0")
    runs = [logged_run(f) for f in run_files(policy)]
    assert len(runs) == 2 and runs[0]["id"] == runs[1]["id"]  # training, then its evaluation in the same run
    for run in runs:
        assert (run["project"], run["entity"], run["job_type"]) == ("myproj", "myteam", "policy")
        assert run["group"] == "lineage-tiny-reach"
        assert {k: run["config"][k] for k in ("preset", "world", "arm", "seed")} == {
            "preset": "tiny", "world": "reach", "arm": ARM, "seed": 0
        }  # fmt: skip
        assert run["tags"] == ["preset:tiny", "world:reach", f"arm:{ARM}", "seed:0"]
    (pretrain,) = [logged_run(f) for f in run_files(lineage / "pretrain-resnet-seed0")]
    assert pretrain["job_type"] == "pretrain" and pretrain["config"]["seed"] == 0
    (report,) = [logged_run(f) for f in run_files(lineage)]
    assert report["job_type"] == "report" and report["group"] == "lineage-tiny-reach"


def test_closed_loop_success_is_logged_into_the_policys_own_run(lineage):
    (policy,) = lineage.glob("policy-*-seed0")
    training, evaluation = run_files(policy)
    assert "eval/success" not in logged_metrics(training)
    metrics = logged_metrics(evaluation)
    final = EvalResult.from_dict(read_record(policy / "eval" / "result.json")).conditions["policy"].success_rate
    curve = EvalResult.from_dict(read_record(policy / "eval-step-2" / "result.json")).conditions["policy"]
    assert metrics["trainer/global_step"] == [2, 4]  # the curve's points, on training's step axis
    assert metrics["eval/success"] == [curve.success_rate, final]
    assert logged_summary(evaluation)["eval/success"] == final


def test_log_artifacts_logs_the_checkpoints_and_the_demo_set(lineage):
    (policy,) = lineage.glob("policy-*-seed0")
    training = run_files(policy)[0]
    assert logged_artifacts(training)["model"] == [f"model-{logged_run(training)['id']}"]
    assert logged_artifacts(run_files(lineage / "pretrain-resnet-seed0")[0])["model"]
    assert logged_artifacts(run_files(lineage)[0])["dataset"] == ["demos-reach"]


def test_vla_eval_is_an_eval_run_and_disabled_writes_nothing(lineage, env, tmp_path):
    (ckpt,) = lineage.glob("policy-*-seed0/policy.ckpt")
    args = ["vla", "eval", "--ckpt", str(ckpt), "--episodes", "2", "--seeds", "1", "--num-envs", "2", "--video", "none"]
    bridge(tmp_path, env, *args, "--out", "online")
    (run,) = [logged_run(f) for f in run_files(tmp_path / "online")]
    assert (run["project"], run["entity"], run["job_type"]) == ("myproj", "myteam", "eval")
    assert "world:reach" in run["tags"]
    bridge(tmp_path, env, *args, "--out", "disabled", WANDB_MODE="disabled")
    assert (tmp_path / "disabled" / "results.json").is_file()
    assert not list((tmp_path / "disabled").rglob("*wandb*"))


def test_fit_is_a_train_run_logs_its_model_on_request_and_disabled_writes_nothing(env, tmp_path):
    bridge(tmp_path, env, *LENET, "--log_model", "true")
    (file,) = run_files(tmp_path / "runs" / "lenet5_digits")
    assert logged_run(file)["job_type"] == "train" and logged_run(file)["project"] == "myproj"
    assert logged_artifacts(file)["model"]
    bridge(tmp_path, env, *LENET, "--name", "quiet", WANDB_MODE="disabled")
    assert (tmp_path / "runs" / "quiet" / "checkpoints" / "last.ckpt").is_file()
    assert not list(tmp_path.rglob("quiet/**/*wandb*"))
