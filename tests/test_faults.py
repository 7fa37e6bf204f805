"""Faults: a checkpoint killed mid-write, damaged stage records, and two pipelines on one folder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from bridge.cli import main
from bridge.lit.checkpoint_io import AtomicCheckpointIO
from recipes.resumable import run_stage

WRITER = """
import sys, torch
from bridge.lit.checkpoint_io import AtomicCheckpointIO
io, big = AtomicCheckpointIO(), {"w": torch.randn(16_000_000)}  # 64 MB: a write takes a while
print("writing", flush=True)
while True:
    io.save_checkpoint(big, sys.argv[1])
"""


def test_sigkill_while_saving_leaves_the_old_checkpoint_or_the_new_one_whole(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(3)}, path)
    for delay in (0.3, 0.9, 1.7):  # kill at different moments of the write loop
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        w = torch.load(path, weights_only=True)["w"]  # never truncated: either checkpoint, complete
        assert w.shape in {(3,), (16_000_000,)}


def counting(calls: list, checkpoint=None):
    def work(folder, resume):
        calls.append(resume)
        if checkpoint is not None:
            AtomicCheckpointIO().save_checkpoint({"step": len(calls)}, folder / checkpoint)
            return {"checkpoint": str(folder / checkpoint)}
        return {"value": len(calls)}

    return work


def test_a_finished_stage_is_read_back_not_redone(tmp_path):
    calls = []
    first = run_stage(tmp_path, "s", {"a": 1}, counting(calls))
    assert run_stage(tmp_path, "s", {"a": 1}, counting(calls)) == first and len(calls) == 1


def test_a_truncated_result_runs_the_stage_again_and_says_so(tmp_path, capsys):
    calls = []
    run_stage(tmp_path, "s", {"a": 1}, counting(calls))
    record = tmp_path / "s" / "result.json"
    record.write_text(record.read_text()[:5])
    assert run_stage(tmp_path, "s", {"a": 1}, counting(calls)) == {"value": 2}
    assert "damaged" in capsys.readouterr().out and json.loads(record.read_text()) == {"value": 2}


def test_a_truncated_checkpoint_behind_a_result_runs_the_stage_again(tmp_path, capsys):
    calls = []
    result = run_stage(tmp_path, "s", {"a": 1}, counting(calls, "policy.ckpt"))
    ckpt = tmp_path / "s" / "policy.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    assert run_stage(tmp_path, "s", {"a": 1}, counting(calls, "policy.ckpt")) == result and len(calls) == 2
    assert "missing or damaged" in capsys.readouterr().out
    assert torch.load(ckpt, weights_only=True) == {"step": 2}


HOLD = """import sys, time
from bridge.runs import FolderLock
with FolderLock(sys.argv[1], "lineage"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_lineage_run_on_a_busy_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit, match=f"in use by pid {holder.pid}"):
            main(["run", "lineage", "--out", str(out), "--steps", "1"])
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in out.iterdir()) == [".bridge.json", ".lock"]  # nothing was trained


def test_lineage_refuses_an_out_folder_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="holds files bridge did not write"):
        main(["run", "lineage", "--out", str(tmp_path), "--steps", "1"])
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
