"""Checks of a resumed run (``train.py ckpt_path=...``) against the checkpoint it resumes, made
before the data is read, so that a wrong checkpoint is refused with what to give rather than
failing inside Lightning (a size mismatch of the id tables, or a corrupt file) minutes later."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from recsys.training.checkpoints import load_checkpoint_config

# What a resumed run must share with the run it resumes: the data and its split (with another
# split, interactions that the checkpoint trained on would be held out) and the network (its
# weights must fit; model.net.text holds the encoder's settings, model.text, so they are named once).
# Folders are left out: they differ between machines and do not change the run.
RESUMED_SETTINGS = ("data.dataset", "data.split", "model.net")
MACHINE_SETTINGS = ("model.net.embedding_cache_dir",)
MAX_DIFFERENCES_SHOWN = 5


@dataclass(frozen=True)
class ResumedCheckpoint:
    """What a resumed run needs to know of its checkpoint: its path, the epoch it was saved in
    (numbered from 0, as Lightning does) and the epochs of the run that saved it."""

    path: Path
    epoch: int
    max_epochs: int | None


def check_resumable(path: Path, cfg: DictConfig) -> ResumedCheckpoint:
    """Read the checkpoint at ``path`` (a ValueError for a file that is not a recsys checkpoint, or is
    truncated) and refuse, naming each setting and both values, a run whose :data:`RESUMED_SETTINGS`
    differ from the checkpoint's run; the message gives the overrides that run was started with,
    where its run folder still holds them."""
    stored, checkpoint = load_checkpoint_config(path)
    differences = setting_differences(stored, cfg)
    if differences:
        shown = "; ".join(f"{key}: {theirs} there, {ours} here" for key, theirs, ours in
                          differences[:MAX_DIFFERENCES_SHOWN])
        more = len(differences) - MAX_DIFFERENCES_SHOWN
        shown += f"; and {more} more" if more > 0 else ""
        command = resume_command(path)
        remedy = (f"resume with the settings it was started with: {command}" if command is not None else
                  "give the same data, split and model settings as the run it comes from")
        raise ValueError(f"ckpt_path={path} was trained with other settings than this run's ({shown}): {remedy}")
    epochs = OmegaConf.select(stored, "trainer.max_epochs", default=None)
    return ResumedCheckpoint(path=path, epoch=int(checkpoint.get("epoch", 0)),
                             max_epochs=int(epochs) if isinstance(epochs, int) else None)


def check_resumed_length(resumed: ResumedCheckpoint, max_epochs: int | None) -> None:
    """Refuse a resumed run whose ``trainer.max_epochs`` ends before the checkpoint's epoch
    (Lightning's MisconfigurationException names its own ``Trainer(max_epochs=...)``)."""
    if max_epochs is not None and max_epochs != -1 and resumed.epoch > max_epochs:
        run = f" of a run of trainer.max_epochs={resumed.max_epochs}" if resumed.max_epochs is not None else ""
        raise ValueError(f"ckpt_path={resumed.path} was saved in epoch {resumed.epoch} (numbered from 0){run}, past "
                         f"trainer.max_epochs={max_epochs}: give trainer.max_epochs above "
                         f"{max(resumed.epoch, resumed.max_epochs or 0)} to train it further, or test it with python "
                         f"scripts/evaluate.py ckpt={resumed.path}")


def setting_differences(stored: DictConfig, cfg: DictConfig) -> list[tuple[str, Any, Any]]:
    """``(key, the checkpoint's value, this run's value)`` for each leaf of :data:`RESUMED_SETTINGS`
    that both configs hold and that differs, machine folders left out; values resolved, as the
    checkpoint stores them."""
    differences = []
    for root in RESUMED_SETTINGS:
        theirs = _leaves(OmegaConf.select(stored, root), root)
        ours = _leaves(OmegaConf.select(cfg, root), root)
        # A setting that one side lacks came or went with another version: not a difference of the run.
        for key in sorted(set(theirs) & set(ours)):
            if key in MACHINE_SETTINGS or ours[key] == "???":  # ???: filled from the data (sizes)
                continue
            if theirs[key] != ours[key]:
                differences.append((key, theirs[key], ours[key]))
    return differences


def resume_command(path: Path) -> str | None:
    """The shell command that resumes from the checkpoint at ``path`` with the overrides its run was
    started with (:func:`started_with`); None when they are not known."""
    overrides = started_with(path)
    return None if overrides is None else "python scripts/train.py " + shlex.join([*overrides, f"ckpt_path={path}"])


def started_with(path: Path) -> list[str] | None:
    """The command-line overrides of the run that wrote the checkpoint at ``path`` (Hydra keeps
    them in ``<run>/.hydra/overrides.yaml``; ``<run>/checkpoints/`` holds the checkpoint), less its
    own ``ckpt_path``; None when they are not there."""
    overrides = path.resolve().parent.parent / ".hydra" / "overrides.yaml"
    if not overrides.is_file():
        return None
    try:
        listed = OmegaConf.load(overrides)
    except Exception:  # noqa: BLE001 (a damaged file only costs the message its hint)
        return None
    if not isinstance(listed, ListConfig):
        return None
    return [str(item) for item in listed if not str(item).startswith("ckpt_path=")]


def _leaves(node: Any, prefix: str) -> dict[str, Any]:
    if node is None:
        return {}
    if not isinstance(node, DictConfig):
        value = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        return {prefix: value}
    leaves: dict[str, Any] = {}
    for key in node.keys():  # noqa: SIM118 (OmegaConf: "in"/items() resolve ??? values)
        name = f"{prefix}.{key!s}"
        if OmegaConf.is_missing(node, key):
            leaves[name] = "???"
            continue
        leaves.update(_leaves(node[key], name))
    return leaves
