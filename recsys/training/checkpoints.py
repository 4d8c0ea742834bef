"""A trained run's checkpoint read back: its stored run config (in the current layout) and the
data it was trained on, prepared again in this machine's folders and checked to be that data.
Used by evaluation, export and the benchmarks."""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from recsys.data.datamodule import ReviewDataModule
from recsys.data.errors import ChangedDataError, DatasetNotFoundError
from recsys.data.sources import locate
from recsys.run_folder import folder_message
from recsys.training.module import CONFIG_KEY

log = logging.getLogger(__name__)
EVALUATE_ON_CHANGED_DATA = "Evaluating on it would count interactions that the model trained on as held out."


def load_checkpoint_config(path: Path) -> tuple[DictConfig, dict]:
    """The run config stored in a checkpoint and the checkpoint itself (read without pickles)."""
    if path.is_dir():
        raise FileNotFoundError(folder_message(path))
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # What torch says here (retry with weights_only=False) is unsafe advice for a file of unknown origin.
        raise ValueError(f"{path} is not a recsys checkpoint: torch.load reads no tensors and plain values "
                         "from it; give a .ckpt file from a run's checkpoints/ folder") from err
    except (RuntimeError, EOFError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise ValueError(f"{path} is truncated or corrupt ({reason}); copy it again, or give another .ckpt "
                         "from the run's checkpoints/ folder") from err
    config = OmegaConf.create(checkpoint[CONFIG_KEY]) if isinstance(checkpoint, dict) and CONFIG_KEY in checkpoint \
        else None
    if not isinstance(config, DictConfig):
        raise ValueError(f"{path} has no recsys config: was it written by scripts/train.py?")
    return upgraded_config(config), checkpoint


def upgraded_config(cfg: DictConfig) -> DictConfig:
    """A run config stored by an earlier version, in the current layout: the relevance threshold
    of the ranking metrics moved from ``model.module`` to ``data`` (it applies to every model)."""
    module = OmegaConf.select(cfg, "model.module")
    if module is not None and "relevance_min_rating" in module:
        threshold = module.pop("relevance_min_rating")
        if OmegaConf.select(cfg, "data.relevance_min_rating", default="absent") == "absent":
            OmegaConf.update(cfg, "data.relevance_min_rating", threshold, force_add=True)
    return cfg


def use_local_folders(cfg: DictConfig, paths: DictConfig | None) -> None:
    """Point a checkpoint's run config ``cfg``, which holds the data and cache folders of the
    machine that trained it, at this invocation's ``paths`` (``paths.data_dir``, ``paths.cache_dir``)
    where its own do not serve: the data is read from the run's folder where the dataset is there,
    else from ``paths.data_dir``; caches go to the run's folder where it exists and is writable,
    else to ``paths.cache_dir``."""
    if paths is None:
        return
    files = hydra.utils.instantiate(cfg.data.dataset)
    try:
        locate(files, cfg.data.data_dir)
    except DatasetNotFoundError:
        locate(files, paths.data_dir)  # raises, naming this machine's folder and how to point at another
        log.info("Reading %s from %s (the run read it from %s)", files.name, paths.data_dir, cfg.data.data_dir)
        _move_folder(cfg, str(cfg.data.data_dir), str(paths.data_dir))
    cache = Path(cfg.data.cache_dir).expanduser()
    if not (cache.is_dir() and os.access(cache, os.W_OK)):
        _move_folder(cfg, str(cfg.data.cache_dir), str(paths.cache_dir))


def _move_folder(node: DictConfig | ListConfig, old: str, new: str) -> None:
    """Replace the folder ``old`` with ``new`` in every value of a resolved config that is or lies
    under it (the cache folder is also in ``paths`` and in ``model.module.embedding_cache_dir``)."""
    old, new = old.rstrip("/"), new.rstrip("/")
    keys: Iterable[Any] = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        if OmegaConf.is_missing(node, key):  # ??? (sizes filled in by build_module)
            continue
        value = node[key]
        if isinstance(value, DictConfig | ListConfig):
            _move_folder(value, old, new)
        elif isinstance(value, str) and (value == old or value.startswith(old + "/")):
            node[key] = new + value[len(old):]


def checkpoint_datamodule(cfg: DictConfig, checkpoint: dict, path: Path, stage: str,
                          consequence: str = EVALUATE_ON_CHANGED_DATA, refuse_changed_data: bool = True,
                          paths: DictConfig | None = None) -> ReviewDataModule:
    """The data of a checkpoint's run, prepared again from its run config ``cfg`` (in this
    machine's folders, :func:`use_local_folders`) and checked to be the data the checkpoint was
    trained on (the fingerprints that it records): other data raises
    :class:`~recsys.data.errors.ChangedDataError` saying ``consequence``, or, without
    ``refuse_changed_data``, logs it as a warning and goes on."""
    use_local_folders(cfg, paths)
    datamodule: ReviewDataModule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup(stage)
    state = checkpoint.get(type(datamodule).__qualname__, {})
    try:
        if not datamodule.check_trained_on(state, path, consequence):
            log.info("%s records no fingerprint of its data (written by an earlier recsys); not checked", path)
    except ChangedDataError as err:
        if refuse_changed_data:
            raise
        log.warning("%s", err)
    return datamodule
