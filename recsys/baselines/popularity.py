"""Most popular: every user gets the items with the most training interactions."""

from __future__ import annotations

import numpy as np
import torch

from recsys.baselines.base import Baseline
from recsys.data.datamodule import ReviewDataModule


class Popularity(Baseline):
    """Ranks items by their number of training interactions (ties: lower item index first)."""

    name = "popularity"

    def fit(self, datamodule: ReviewDataModule) -> None:
        counts = datamodule.item_train_counts().astype(np.float64)
        # A vanishing tie-break keeps the order deterministic and documented.
        self.scores = torch.from_numpy(counts - np.arange(len(counts)) * 1e-9).float()

    def user_scores(self, users: np.ndarray) -> torch.Tensor:
        return self.scores.expand(len(users), -1)
