"""Read what an offline W&B run recorded (its ``run-<id>.wandb`` file), so that tests can check a run's
name, group, tags, config, summary and exit status as the dashboard will show them once synced.

The file is wandb's transaction log: a 7-byte header (``:W&B``, magic, version), then LevelDB log
records (32 KiB blocks; each chunk a 7-byte header: CRC, length, type FULL/FIRST/MIDDLE/LAST), each
record a ``wandb_internal_pb2.Record``. wandb 0.31 writes it from its Go core and ships no Python reader.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    """Every record of a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    found, pending, position = [], b"", HEADER
    while position + HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < HEADER:  # a block's tail too short for a chunk header is padding
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + HEADER])
        if length == 0 and kind == 0:  # zero padding up to the block's end
            position += left_in_block
            continue
        if position + HEADER + length > len(data):  # a chunk still being written
            break
        pending += data[position + HEADER:position + HEADER + length]
        position += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            found.append(record)
            pending = b""
    return found


@dataclass
class OfflineRun:
    """What the dashboard will show of one offline run."""

    name: str
    group: str
    tags: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None


def _key(item) -> str:
    """An update's key: ``key``, or ``nested_key`` (a key with a ``/`` comes as a one-part nested key)."""
    return item.key or ".".join(item.nested_key)


def offline_run(run_folder: Path, timeout: float = 30.0) -> OfflineRun:
    """The finished run recorded in ``run_folder`` (``wandb/offline-run-<time>-<id>``). wandb's core
    (another process) writes the file and may still be flushing it when ``finish()`` has returned
    (seen once in CI: a file without its run record), so it is read again until it holds the run
    and its exit, for up to ``timeout`` seconds."""
    (log,) = Path(run_folder).glob("*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        run = _read_run(log)
        if (run is not None and run.exit_code is not None) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert run is not None, f"{log} holds no run record after {timeout:.0f} s"
    return run


def _read_run(log: Path) -> OfflineRun | None:
    """The run as ``log`` records it so far (None before its run record); ``exit_code`` None before its end."""
    run = None
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    exit_code = None
    for record in records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "config":
            config.update({_key(item): json.loads(item.value_json) for item in record.config.update})
        elif kind == "summary":
            summary.update({_key(item): json.loads(item.value_json) for item in record.summary.update})
        elif kind == "exit":
            exit_code = record.exit.exit_code
    if run is None:
        return None
    return OfflineRun(run.display_name, run.run_group, list(run.tags), config, summary, exit_code)
