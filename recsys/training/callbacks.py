"""Callbacks that recsys adds to every training run."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning import Callback


class RandomStateCheckpoint(Callback):
    """Keep the process-wide random generators (torch, NumPy, Python) in every checkpoint.

    Lightning restores weights, optimiser and loop progress but not these generators, which drive
    the shuffling order and dropout. With them restored, a run resumed from an epoch-end
    checkpoint draws exactly what an uninterrupted run would (the negatives' generator is saved
    by the datamodule's own ``state_dict``), so it ends with the same metrics.
    """

    def state_dict(self) -> dict[str, Any]:
        kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            # Plain lists and ints, so the checkpoint still loads with torch.load(weights_only=True).
            "numpy": [kind, keys.tolist(), position, has_gauss, cached_gaussian],
            "python": list(random.getstate()),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        kind, keys, position, has_gauss, cached_gaussian = state_dict["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
        version, internal, gauss_next = state_dict["python"]
        random.setstate((version, tuple(internal), gauss_next))


# Validation metrics drawn by epoch (recsys.training.report.LEARNING_CURVE_PANELS).
CURVE_METRICS = ("val/rmse", "val/recall@10")


class LearningCurves(Callback):
    """Record what the learning curves show, so that every run draws them whatever its loggers
    (``logger=tensorboard`` or ``none`` included): the training loss of every batch,
    each epoch's mean (weighted by batch size, as ``train/epoch_loss``) and the validation
    metrics of :data:`CURVE_METRICS` by epoch, as rows of ``epoch``, ``step`` (batches seen, from
    0) and the metric. Kept in checkpoints, so that a resumed run's curves start at its first
    epoch. In a distributed run, the training losses are the first process's batches'.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.batches = 0
        self._epoch_loss = (0.0, 0)  # sum of loss x batch size, and pairs, of the epoch so far
        self._closed_epoch = -1

    @property
    def frame(self) -> pd.DataFrame:
        """The rows as a table (columns ``epoch``, ``step`` and the metrics; empty when none)."""
        return pd.DataFrame(self.rows)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_loss = (0.0, 0)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is None:  # a skipped step
            return
        value, pairs = float(loss), len(batch)
        self.rows.append({"epoch": trainer.current_epoch, "step": self.batches, "train/loss": value})
        self.batches += 1
        total, count = self._epoch_loss
        self._epoch_loss = (total + value * pairs, count + pairs)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if trainer.is_last_batch:  # closed here, not at the epoch's end: that comes after its checkpoints
            self._close_epoch(trainer.current_epoch)
        metrics = {k: float(trainer.callback_metrics[k]) for k in CURVE_METRICS if k in trainer.callback_metrics}
        if metrics:
            self.rows.append({"epoch": trainer.current_epoch, "step": self.batches - 1, **metrics})

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_epoch(trainer.current_epoch)  # an epoch without validation

    def _close_epoch(self, epoch: int) -> None:
        total, count = self._epoch_loss
        if epoch != self._closed_epoch and count:
            self.rows.append({"epoch": epoch, "step": self.batches - 1, "train/epoch_loss": total / count})
            self._closed_epoch = epoch

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "batches": self.batches, "closed_epoch": self._closed_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict["rows"])
        self.batches = state_dict["batches"]
        self._closed_epoch = state_dict["closed_epoch"]
