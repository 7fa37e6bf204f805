"""Run folders: one folder holds one thing bridge wrote, and one process writes to it at a time.

* **Marks.** Every folder bridge creates for a run, a pipeline or a demo set gets a small ``.bridge.json``
  naming its kind. A command only ever replaces a folder that carries the mark of the same kind, so
  ``--overwrite`` can never delete a user's own files or another kind of output.
* **Locks.** A writer holds an exclusive ``flock`` on ``<folder>/.lock`` while it works. The kernel drops
  the lock when the process ends, however it ends, so a crash or ``kill -9`` cannot leave a folder stuck.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Self

from bridge.errors import ConfigError

MARK_FILE = ".bridge.json"
LOCK_FILE = ".lock"


class FolderInUseError(ConfigError):
    """Another process is writing to the folder."""


def folder_kind(path: str | os.PathLike) -> str | None:
    """The kind bridge marked ``path`` with ("run", "demos", "lineage", ...), or None."""
    mark = Path(path) / MARK_FILE
    try:
        return json.loads(mark.read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def mark_folder(path: str | os.PathLike, kind: str) -> Path:
    """Create ``path`` if needed and mark it as a folder of ``kind`` (written atomically)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f".{MARK_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"kind": kind}))
    os.replace(tmp, path / MARK_FILE)
    return path


def is_empty(path: Path) -> bool:
    return not any(p.name not in (MARK_FILE, LOCK_FILE) for p in path.iterdir())


def check_folder_path(path: str | os.PathLike, option: str = "output folder") -> None:
    """Raise when ``path`` or a folder above it is a file: no folder can be made there. ``option`` is what the
    message asks the user to choose again (e.g. ``--out``)."""
    path = Path(path)
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                where = "is a file" if place == path else f"is under {place}, which is a file"
                raise ConfigError(f"{path} {where}, not a folder; choose another {option}")
            return


def check_writable(
    path: str | os.PathLike, kind: str, overwrite: bool = False, flag: str | None = "--overwrite", option: str = "--out"
) -> None:
    """Raise unless a ``kind`` may be written at ``path``: it is absent, empty, or (with ``overwrite``) a ``kind``.

    ``flag`` is the command's option that sets ``overwrite``, named in the messages; None for a command that
    replaces its own kind of folder without being asked (it has no such option); ``option`` is the path's own.
    Call it before any work starts, so minutes of work are never thrown away at the end.
    """
    path = Path(path)
    check_folder_path(path, option)
    if not path.exists() or is_empty(path):
        return
    found = folder_kind(path)
    if found != kind:
        what = f"bridge's {found} output" if found else "files bridge did not write"
        raise ConfigError(
            f"{path} already holds {what}; refusing to replace it with bridge's {kind} output. Choose another {option}"
            + (f" ({flag} only ever replaces a folder of the same kind)" if overwrite and flag else "")
        )
    if not overwrite:
        fix = f" or pass {flag}" if flag else ""
        raise ConfigError(f"{path} already holds a {kind} folder; choose another {option}{fix}")


def replace_folder(tmp: Path, path: Path, kind: str) -> Path:
    """Move the finished ``tmp`` folder to ``path``, replacing an earlier ``kind`` there; return ``path``.

    The old folder is renamed aside before the new one moves in, so a crash leaves one of the two whole.
    """
    mark_folder(tmp, kind)
    if path.exists():
        check_writable(path, kind, overwrite=True, flag=None)
        old = path.with_name(f".{path.name}.{os.getpid()}.old")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
    return path


def is_launching_process() -> bool:
    """True only in the process that owns a run's folder: global rank 0. DDP's other processes (torchrun's
    ``RANK`` > 0, Lightning's ``LOCAL_RANK`` or ``NODE_RANK`` > 0) write into the folder that one holds."""
    if os.environ.get("RANK"):
        return int(os.environ["RANK"]) == 0
    return all(int(os.environ.get(var) or 0) == 0 for var in ("LOCAL_RANK", "NODE_RANK"))


class FolderLock:
    """``with FolderLock(path):`` one writer at a time; a second is refused at once with who holds it.

    Only the process that owns the folder locks it (see :func:`is_launching_process`).
    """

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        self.path, self.kind = Path(path), kind
        self._fd: int | None = None

    def __enter__(self) -> Self:
        if not is_launching_process():
            return self
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise FolderInUseError(
                f"{self.path} is in use by {holder}: one {self.kind} writes there at a time. Wait for it to finish, "
                "or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
