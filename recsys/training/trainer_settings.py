"""A run's trainer settings, checked before the data is read (Lightning finds most of these
mistakes late, or not at all); the number of epochs, once the data's size is known; and the
Lightning Trainer built from them."""

from __future__ import annotations

import logging
import math
import os
import re
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.accelerators import CPUAccelerator

from recsys.data.datamodule import ReviewDataModule
from recsys.settings import (
    checked_flag,
    checked_number,
    checked_whole_number,
    is_whole_number,
    whole_number_setting,
)
from recsys.training.module import TwoTowerModule, check_cutoffs

log = logging.getLogger(__name__)


def share_cpu_threads(trainer: pl.Trainer) -> None:
    """Give each process of a multi-process CPU run its share of the cores (not all of them each)."""
    if trainer.num_devices > 1 and isinstance(trainer.accelerator, CPUAccelerator):
        threads = max(1, (os.cpu_count() or 1) // trainer.num_devices)
        torch.set_num_threads(threads)
        log.info("%d processes on CPU: %d threads each", trainer.num_devices, threads)


def check_monitor(cfg: DictConfig) -> None:
    """Refuse a ``model.monitor`` that validation does not log, or a ``model.monitor_mode`` other
    than min / max, naming what is allowed (Lightning finds out only after the first epoch); and
    the same of each callback's own ``monitor`` and ``mode`` (``callbacks.rating_checkpoint.monitor``,
    or an early-stopping callback added with ``+callbacks.<name>``)."""
    ks = cfg.model.module.get("ks", [5, 10, 20])
    ks = list(ks) if isinstance(ks, ListConfig) else ks
    check_cutoffs(ks)
    allowed = TwoTowerModule.evaluation_metric_names("val", ks)
    monitors = [("model.monitor", cfg.model.monitor, "model.monitor_mode", cfg.model.monitor_mode)]
    for name, callback in (cfg.get("callbacks") or {}).items():
        # A training metric (early stopping on train/loss) is the callback's business: what the
        # training step logs varies with the losses in use.
        if (isinstance(callback, DictConfig) and callback.get("monitor") is not None
                and not str(callback.monitor).startswith("train/")):
            monitors.append((f"callbacks.{name}.monitor", callback.monitor,
                             f"callbacks.{name}.mode", callback.get("mode", "min")))
    for key, monitor, mode_key, mode in monitors:
        if monitor not in allowed:
            raise ValueError(f"{key}={monitor} is not a validation metric of this model; "
                             f"choose one of {', '.join(allowed)}")
        if mode not in ("min", "max"):
            raise ValueError(f"{mode_key}={mode} is not allowed; use min or max")


def check_accelerator(cfg: DictConfig) -> None:
    """Refuse a GPU trainer where torch sees no GPU, with what to do (Lightning says only that
    no GPU backend was found)."""
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        build = "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}"
        raise ValueError(f"trainer.accelerator={accelerator} needs a CUDA GPU, and torch sees none (torch "
                         f"{torch.__version__}, built {build}); use trainer=cpu")


def check_trainer_settings(cfg: DictConfig) -> None:
    """Refuse a value of the wrong kind for the trainer settings that the configs set, naming the
    override: Lightning takes ``log_every_n_steps=abc`` or ``deterministic=maybe`` without a word
    and fails, or not, later on."""
    trainer = cfg.trainer
    if trainer.get("gradient_clip_val") is not None:
        checked_number("trainer.gradient_clip_val", trainer.gradient_clip_val, least=0, note="(or null: no clipping)")
    for key, least in (("log_every_n_steps", 1), ("num_sanity_val_steps", -1), ("num_nodes", 1),
                       ("accumulate_grad_batches", 1)):
        if key in trainer:
            checked_whole_number(f"trainer.{key}", trainer[key], least=least)
    devices = trainer.get("devices", "auto")
    # Lightning's forms besides a count: auto or -1 (every device), and device ids as a list or "0,1".
    listed = isinstance(devices, ListConfig) or (
        isinstance(devices, str) and re.fullmatch(r"\d+(\s*,\s*\d+)*,?", devices) is not None)
    if devices not in ("auto", -1) and not listed:
        checked_whole_number("trainer.devices", devices, least=1,
                             note="(or -1 or auto: every device; or device ids, e.g. [0,1])")
    if "deterministic" in trainer and trainer.deterministic != "warn":
        checked_flag("trainer.deterministic", trainer.deterministic)
    check_training_length(trainer)


def check_training_length(trainer: DictConfig) -> None:
    """Refuse ``trainer.max_epochs`` / ``trainer.max_steps`` that train nothing (0) or without end
    (-1 for both): the learning-rate schedule, warmup then decay, is laid out over the run's steps, so
    Lightning's endless run would fail at its start with an overflow that names neither setting."""
    steps = checked_whole_number("trainer.max_steps", trainer.get("max_steps", -1), least=-1,
                                 note="(-1: no step limit, train trainer.max_epochs epochs)")
    if steps == 0:
        raise ValueError("trainer.max_steps=0 is not allowed: it trains nothing; give a number of optimiser "
                         "steps >= 1, or -1 to train trainer.max_epochs epochs")
    epochs = trainer.get("max_epochs")
    if epochs is None or not is_whole_number(epochs):  # None: Lightning's default; a word: refused by the caller
        return
    if epochs == 0 or epochs < -1:
        raise ValueError(f"trainer.max_epochs={epochs} is not allowed: give a number of epochs >= 1 "
                         "(0 trains nothing)")
    if epochs == -1 and steps == -1:
        raise ValueError("trainer.max_epochs=-1 (no epoch limit) needs trainer.max_steps=N: the learning-rate "
                         "schedule (warmup, then decay) is laid out over the run's length")


def built_trainer(cfg: DictConfig, **arguments: Any) -> pl.Trainer:
    """The Lightning Trainer of ``cfg.trainer``; a setting that Lightning refuses (e.g.
    ``trainer.precision=bf17``) is a ValueError that says it is a trainer setting."""
    try:
        return hydra.utils.instantiate(cfg.trainer, **arguments)
    except InstantiationException as err:
        raise ValueError(f"a trainer setting is not allowed: {err.__cause__ or err}") from err


def training_epochs(cfg: DictConfig, datamodule: ReviewDataModule) -> int | None:
    """``trainer.max_epochs``, raised where needed so that training takes at least ``model.min_steps``
    optimiser steps (batches of ``data.batch_size`` pairs, one process): a schedule set in epochs
    on a large dataset is too short on a small one. An explicit ``trainer.max_epochs=N`` is kept, as
    is ``null`` (Lightning's own default)."""
    epochs = whole_number_setting(cfg, "trainer.max_epochs")
    min_steps = whole_number_setting(cfg, "model.min_steps") or 0
    if epochs is None or min_steps <= 0 or not OmegaConf.is_interpolation(cfg.trainer, "max_epochs"):
        return epochs
    batches = math.ceil(len(datamodule.prepared.pairs["train"]) / datamodule.batch_size)
    steps_per_epoch = math.ceil(batches / int(cfg.trainer.get("accumulate_grad_batches") or 1))
    needed = math.ceil(min_steps / steps_per_epoch)
    if needed > epochs:
        log.info("%d epochs (not %d): %d steps an epoch, model.min_steps=%d", needed, epochs, steps_per_epoch,
                 min_steps)
    return max(epochs, needed)
