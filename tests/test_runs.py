"""Run folders: only a folder of the same kind is ever replaced, and one writer holds a folder at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from bridge.errors import BridgeError
from bridge.runs import FolderInUseError, FolderLock, check_writable, folder_kind, mark_folder, replace_folder


def test_absent_or_empty_folders_are_writable(tmp_path):
    check_writable(tmp_path / "new", "demos")
    (tmp_path / "empty").mkdir()
    check_writable(tmp_path / "empty", "demos")


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_users_own_folder_is_never_replaced(tmp_path, overwrite):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BridgeError, match="files bridge did not write"):
        check_writable(tmp_path, "demos", overwrite=overwrite)


def test_another_kind_is_refused_even_with_overwrite(tmp_path):
    mark_folder(tmp_path, "run")
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(BridgeError, match="bridge's run output"):
        check_writable(tmp_path, "demos", overwrite=True)


def test_the_same_kind_needs_overwrite(tmp_path):
    mark_folder(tmp_path, "demos")
    (tmp_path / "data.arrow").write_text("x")
    assert folder_kind(tmp_path) == "demos"
    with pytest.raises(BridgeError, match="pass --overwrite"):
        check_writable(tmp_path, "demos")
    check_writable(tmp_path, "demos", overwrite=True)


def test_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(BridgeError, match="is a file"):
        check_writable(tmp_path / "out", "demos")


def test_replace_folder_swaps_in_the_new_contents(tmp_path):
    target = mark_folder(tmp_path / "set", "demos")
    (target / "old.txt").write_text("old")
    new = tmp_path / "tmp"
    new.mkdir()
    (new / "new.txt").write_text("new")
    replace_folder(new, target, "demos")
    assert sorted(p.name for p in target.iterdir()) == [".bridge.json", "new.txt"]
    assert folder_kind(target) == "demos" and not new.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # the old contents are gone, nothing left aside


HOLD = """import sys, time
from bridge.runs import FolderLock
with FolderLock(sys.argv[1], "run"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_and_a_killed_one_releases_the_lock(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(FolderInUseError, match=f"in use by pid {proc.pid}"), FolderLock(tmp_path, "run"):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with FolderLock(tmp_path, "run"):  # the kernel dropped the dead writer's lock
        pass


@pytest.mark.parametrize(
    "ranks",
    [{"LOCAL_RANK": "1"}, {"NODE_RANK": "1"}, {"RANK": "1", "LOCAL_RANK": "0"}],
    ids=["local", "node", "global"],
)
def test_only_global_rank_zero_locks(tmp_path, monkeypatch, ranks):
    with FolderLock(tmp_path, "run"):
        for name, value in ranks.items():  # torchrun on two nodes: LOCAL_RANK 0 on both, RANK tells them apart
            monkeypatch.setenv(name, value)
        with FolderLock(tmp_path, "run"):
            pass


def test_a_released_lock_can_be_taken_again_and_names_its_holder(tmp_path):
    for _ in range(2):
        with FolderLock(tmp_path, "run"):
            assert (tmp_path / ".lock").read_text() == f"pid {os.getpid()}"
