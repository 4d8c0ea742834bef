"""What a training run's folder holds, read without loading anything heavy: its checkpoint files
and what its ``metrics.json`` says each one is (light: serving imports it)."""

from __future__ import annotations

import json
from pathlib import Path

from recsys.export.format import MANIFEST


def _checkpoints_and_report(path: Path) -> tuple[list[Path], dict]:
    """The ``.ckpt`` files in ``path`` (or in its ``checkpoints/``, a run directory's), sorted, and
    the run's ``metrics.json`` ({} where there is none, or it is unreadable)."""
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    try:
        report = json.loads((folder.parent / "metrics.json").read_text())
    except (OSError, ValueError):
        report = {}
    return sorted(folder.glob("*.ckpt")), report if isinstance(report, dict) else {}


def checkpoint_roles(path: Path) -> dict[Path, str | None]:
    """The checkpoints of :func:`_checkpoints_and_report`, each with what the run's report says
    it is (``None`` where it says nothing)."""
    files, report = _checkpoints_and_report(path)
    monitored = next((name.removeprefix("best_") for name in report if name.startswith("best_")), None)
    roles = {"last.ckpt": "the latest epoch", report.get("rating_checkpoint"): "the lowest validation RMSE",
             report.get("checkpoint"): f"the best by {monitored}" if monitored else "the one the run tested"}
    return {file: roles.get(file.name) for file in files}


def run_name(checkpoint: Path) -> str:
    """The name of the run folder that holds ``checkpoint`` (in its ``checkpoints/``, or directly)."""
    folder = checkpoint.parent
    return folder.parent.name if folder.name == "checkpoints" else folder.name


def tested_checkpoint(path: Path) -> Path | None:
    """The checkpoint whose test figures the run reported (its best by the monitored metric), else
    the first checkpoint there, else None."""
    files, report = _checkpoints_and_report(path)
    return next((file for file in files if file.name == report.get("checkpoint")), files[0] if files else None)


def folder_message(path: Path, key: str = "ckpt") -> str:
    """What to say of a folder given as the setting ``key``, where a checkpoint file belongs: the
    checkpoints in it, each with what it is (:func:`checkpoint_roles`)."""
    roles = checkpoint_roles(path)
    if not roles and (path / MANIFEST).is_file():
        return f"{key}={path} is an export, not a checkpoint (its test metrics are in its {MANIFEST}); " \
            f"give the checkpoint it was exported from: {_exported_from(path / MANIFEST)}"
    if not roles:
        return f"{key}={path} is a folder that holds no .ckpt file; give a checkpoint file from a run's checkpoints/"
    listed = "; ".join(str(file) + (f" ({role})" if role else "") for file, role in roles.items())
    return f"{key}={path} is a folder; give one checkpoint file in it: {listed}"


def _exported_from(manifest: Path) -> str:
    """The checkpoint an export's manifest records as its source, in words."""
    try:
        source = json.loads(manifest.read_text()).get("source") or {}
    except (OSError, ValueError, AttributeError):
        source = {}
    if not isinstance(source, dict) or not source.get("checkpoint"):  # exports made before it was recorded
        return "a .ckpt file in its run's checkpoints/"
    return f"{source['checkpoint']} (epoch {source.get('epoch', '?')}, step {source.get('global_step', '?')})"
