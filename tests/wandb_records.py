"""Read an offline W&B run file back (``run-<id>.wandb``), so tests can check what a run logged.

wandb >= 0.18 writes these files from its Go core and ships no Python reader. The format is a LevelDB-style
log: a 7-byte header (":W&B", magic, version), then 32 KiB blocks of records, each with a 7-byte header
(crc32c, little-endian length, type: 1 full, 2 first, 3 middle, 4 last) and a protobuf ``Record`` payload.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

_BLOCK = 32 * 1024
_HEADER = 7


def read_records(path: str | Path) -> list[pb.Record]:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    records, chunks, pos = [], [], _HEADER
    while pos + _HEADER <= len(data):
        room = _BLOCK - pos % _BLOCK
        if room < _HEADER:  # block trailer too small for a header: skip to the next block
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if length == 0 and kind == 0:
            pos += room
            continue
        chunks.append(data[pos + _HEADER : pos + _HEADER + length])
        pos += _HEADER + length
        if kind in (1, 4):  # full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(b"".join(chunks))
            records.append(record)
            chunks = []
    return records


def logged_metrics(path: str | Path) -> dict[str, list]:
    """Every history key the run logged, with its values in order."""
    history: dict[str, list] = {}
    for record in read_records(path):
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                history.setdefault(key, []).append(json.loads(item.value_json))
    return history


def logged_config(path: str | Path) -> dict[str, object]:
    config: dict[str, object] = {}
    for record in read_records(path):
        if record.WhichOneof("record_type") == "config":
            for item in record.config.update:
                config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return config


def logged_summary(path: str | Path) -> dict[str, object]:
    summary: dict[str, object] = {}
    for record in read_records(path):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return summary


def logged_run(path: str | Path) -> dict[str, object]:
    """The run's own record: project, entity, job type, group, tags, and the config given to ``wandb.init``."""
    (run,) = [r.run for r in read_records(path) if r.WhichOneof("record_type") == "run"]
    config = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in run.config.update}
    return {"id": run.run_id, "project": run.project, "entity": run.entity, "job_type": run.job_type,
            "group": run.run_group, "tags": list(run.tags), "config": config}  # fmt: skip


def logged_artifacts(path: str | Path) -> dict[str, list[str]]:
    """Every artifact the run logged, by type: their names."""
    artifacts: dict[str, list[str]] = {}
    for record in read_records(path):
        if record.WhichOneof("record_type") == "artifact":
            artifacts.setdefault(record.artifact.type, []).append(record.artifact.name)
    return artifacts
