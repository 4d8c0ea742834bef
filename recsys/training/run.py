"""The ``train.py`` entry."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from recsys.data.datamodule import ReviewDataModule


def train(cfg: DictConfig) -> float | None:
    """Prepare the data of ``cfg`` and train the model of ``cfg`` on it."""
    datamodule: ReviewDataModule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    raise NotImplementedError(
        "Data is prepared; the two-tower model is not in this version yet (see issue 3)."
    )
