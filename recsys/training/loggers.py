"""Experiment loggers and callbacks from config; Weights & Biases offline unless configured."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning import Callback
from pytorch_lightning.loggers import Logger

log = logging.getLogger(__name__)


def wandb_account_configured() -> bool:
    """True when an API key is in the environment or ``wandb login`` stored one in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def instantiate_loggers(logger_cfg: DictConfig | None) -> list[Logger]:
    """One logger per entry of the ``logger`` group; a WandbLogger with ``offline: null`` runs
    offline (no network, no prompt) unless an account is configured or WANDB_MODE says otherwise."""
    loggers: list[Logger] = []
    for name, entry in (logger_cfg or {}).items():
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            continue
        entry = OmegaConf.to_container(entry, resolve=True)
        if entry["_target_"].endswith("WandbLogger"):
            if entry.get("offline") is None:
                mode = os.environ.get("WANDB_MODE")
                entry["offline"] = mode == "offline" or (mode is None and not wandb_account_configured())
            if entry["offline"]:
                os.environ["WANDB_MODE"] = "offline"
            os.environ.setdefault("WANDB_SILENT", "true")
            Path(entry.get("save_dir", ".")).mkdir(parents=True, exist_ok=True)
            log.info("wandb logger %s (%s)", name, "offline" if entry["offline"] else "online")
        logger = hydra.utils.instantiate(entry)
        drop_unset_wandb_anonymous(logger)
        loggers.append(logger)
    return loggers


def drop_unset_wandb_anonymous(logger: Logger) -> None:
    """Remove the ``anonymous=None`` that Lightning's WandbLogger always hands to ``wandb.init``:
    wandb (0.31 here) warns that the setting has no effect whenever it is given, even as None."""
    init_kwargs = getattr(logger, "_wandb_init", None)  # Lightning's private store of wandb.init's arguments
    if isinstance(init_kwargs, dict) and "anonymous" in init_kwargs and init_kwargs["anonymous"] is None:
        del init_kwargs["anonymous"]


def instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    """One callback per entry of the ``callbacks`` group."""
    return [
        hydra.utils.instantiate(entry)
        for entry in (callbacks_cfg or {}).values()
        if isinstance(entry, DictConfig) and "_target_" in entry
    ]


def usable_callbacks(callbacks: list[Callback], loggers: list[Logger]) -> list[Callback]:
    """``callbacks`` without those that need a logger (the learning-rate monitor) when there is
    none, and without checkpoints that repeat an earlier one's (see :func:`distinct_checkpoints`)."""
    from pytorch_lightning.callbacks import LearningRateMonitor

    callbacks = distinct_checkpoints(callbacks)
    if loggers:
        return callbacks
    dropped = [type(c).__name__ for c in callbacks if isinstance(c, LearningRateMonitor)]
    if dropped:
        log.info("No logger: not using %s", ", ".join(dropped))
    return [c for c in callbacks if not isinstance(c, LearningRateMonitor)]


def distinct_checkpoints(callbacks: list[Callback]) -> list[Callback]:
    """``callbacks`` without a ``ModelCheckpoint`` that keeps the same epochs as an earlier one
    (same monitor, mode and frequency): with ``model.monitor=val/rmse`` the best checkpoint is
    already the rating checkpoint, and Lightning refuses two checkpoints with one state key."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    kept, keys = [], set()
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint):
            if callback.state_key in keys:
                log.info("Not using a second checkpoint of %s (%s): it would repeat the first",
                         callback.monitor, callback.mode)
                continue
            keys.add(callback.state_key)
        kept.append(callback)
    return kept
