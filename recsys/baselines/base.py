"""The interface every non-neural baseline implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from recsys.data.datamodule import ReviewDataModule


class Baseline(ABC):
    """Fits on the training split of a DataModule; scores every item for users; may predict stars."""

    name: str = "baseline"

    @abstractmethod
    def fit(self, datamodule: ReviewDataModule) -> None:
        """Learn from ``datamodule.prepared`` (training split only)."""

    @abstractmethod
    def user_scores(self, users: np.ndarray) -> torch.Tensor:
        """Scores [len(users), num_items]; higher ranks first."""

    def predict_ratings(self, users: np.ndarray, items: np.ndarray) -> np.ndarray | None:
        """Predicted stars of (user, item) pairs, or None for a ranking-only model."""
        return None
