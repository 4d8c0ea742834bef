"""Callbacks that recsys adds to every training run."""

from __future__ import annotations

import logging
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning import Callback
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from recsys.training.report import LEARNING_CURVE_PANELS

log = logging.getLogger(__name__)


class RandomStateCheckpoint(Callback):
    """Keep the process-wide random generators (torch, NumPy, Python) in every checkpoint.

    Lightning restores weights, optimiser and loop progress but not these generators, which drive
    the shuffling order and dropout. With them restored, a run resumed from an epoch-end
    checkpoint draws exactly what an uninterrupted run would (the negatives' generator is saved
    by the datamodule's own ``state_dict``), so it ends with the same metrics.
    """

    def state_dict(self) -> dict[str, Any]:
        state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
        kind, keys, position, has_gauss, cached_gaussian = state
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


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``, whose kept checkpoints follow a resumed run into its folder.

    A resumed run (``ckpt_path=...``) writes to a folder of its own. Restored from a checkpoint of
    another folder, Lightning's callback keeps the path of the earlier best checkpoint but forgets
    its score, so the resumed run's first validated epoch became the best however it scored: a run
    killed after its best epoch tested a worse one. This one brings the earlier run's kept
    checkpoints into the new folder (a hard link, else a copy; the earlier folder is left as it is)
    with their scores, so the best epoch is chosen over the whole run, as without the interruption.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        earlier = state_dict.get("dirpath")
        if earlier is None or self.dirpath is None or earlier == self.dirpath:
            super().load_state_dict(state_dict)
            return
        kept = {str(path): score for path, score in state_dict.get("best_k_models", {}).items()}
        gone = [path for path in kept if not Path(path).is_file()]
        if gone:
            log.warning("The earlier run's checkpoint %s is gone: the best epoch by %s is chosen among the "
                        "resumed run's epochs only", gone[0], self.monitor)
            kept = {}
        here = {path: str(Path(self.dirpath) / Path(path).name) for path in kept}
        if getattr(rank_zero_only, "rank", 0) == 0:  # one process links; the others only read them, later
            Path(self.dirpath).mkdir(parents=True, exist_ok=True)
            for source, target in here.items():
                _link_or_copy(Path(source), Path(target))
        super().load_state_dict({
            **state_dict,
            "dirpath": self.dirpath,
            "best_k_models": {here[path]: score for path, score in kept.items()},
            "best_model_path": here.get(str(state_dict.get("best_model_path", "")), ""),
            "best_model_score": state_dict.get("best_model_score") if kept else None,
            "kth_best_model_path": here.get(str(state_dict.get("kth_best_model_path", "")), ""),
            "kth_value": state_dict.get("kth_value", self.kth_value) if kept else self.kth_value,
            "last_model_path": "",
        })


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or one without hard links
        shutil.copy2(source, target)


class RunProgressBar(RichProgressBar):
    """Lightning's default progress bar (rich, a dependency of recsys) without the logger's version
    (``v_num``) beside it: that is no figure of the run (0 for the first run of a folder)."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def run_progress_bar(callbacks: list[Callback]) -> list[Callback]:
    """The progress bar to add to ``callbacks``: none where they hold one already (a user's
    ``callbacks.*`` entry wins), else :class:`RunProgressBar`."""
    return [] if any(isinstance(callback, ProgressBar) for callback in callbacks) else [RunProgressBar()]


# Validation metrics drawn by epoch.
CURVE_METRICS = tuple(column for _, x, columns in LEARNING_CURVE_PANELS if x == "epoch" for column in columns)


class LearningCurves(Callback):
    """Record what the learning curves show, so that every run draws them whatever its loggers
    (``logger=tensorboard`` or ``none`` included): the training loss of every batch,
    each epoch's mean (weighted by batch size, as ``train/epoch_loss``) and the validation
    metrics of :data:`CURVE_METRICS` by epoch, as rows of ``epoch``, ``step`` (batches seen, from
    0) and the metric; an epoch's batches join the rows when it closes. Kept in checkpoints, so
    that a resumed run's curves start at its first epoch. In a distributed run, the training
    losses are the first process's batches'.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.batches = 0
        # The open epoch's batches: (step, loss, pairs). The losses stay tensors on the module's
        # device until the epoch closes, so that no training step waits for a copy to the host.
        self._open_epoch: list[tuple[int, torch.Tensor, int]] = []
        self._closed_epoch = -1

    @property
    def frame(self) -> pd.DataFrame:
        """The closed epochs' rows as a table (columns ``epoch``, ``step`` and the metrics; empty when none)."""
        return pd.DataFrame(self.rows)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is None:  # a skipped step
            return
        self._open_epoch.append((self.batches, loss.detach(), len(batch)))
        self.batches += 1

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
        if epoch == self._closed_epoch or not self._open_epoch:
            return
        steps, losses, pairs = zip(*self._open_epoch, strict=True)
        device = losses[-1].device  # (losses restored from a checkpoint come on the CPU)
        values = torch.stack([loss.to(device) for loss in losses]).double().cpu()  # one copy to the host an epoch
        self.rows += [{"epoch": epoch, "step": step, "train/loss": value}
                      for step, value in zip(steps, values.tolist(), strict=True)]
        weights = torch.tensor(pairs, dtype=torch.float64)
        mean = float((values * weights).sum() / weights.sum())
        self.rows.append({"epoch": epoch, "step": steps[-1], "train/epoch_loss": mean})
        self._open_epoch, self._closed_epoch = [], epoch

    def state_dict(self) -> dict[str, Any]:
        open_epoch = [[step, float(loss), pairs] for step, loss, pairs in self._open_epoch]
        return {"rows": self.rows, "batches": self.batches, "closed_epoch": self._closed_epoch,
                "open_epoch": open_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict["rows"])
        self.batches = state_dict["batches"]
        self._closed_epoch = state_dict["closed_epoch"]
        self._open_epoch = [(step, torch.tensor(loss), pairs) for step, loss, pairs in state_dict["open_epoch"]]
