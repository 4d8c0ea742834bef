"""Global mean + regularised user and item biases, fitted by alternating least squares."""

from __future__ import annotations

import numpy as np
import torch

from recsys.baselines.base import Baseline
from recsys.data.datamodule import ReviewDataModule
from recsys.settings import checked_number, checked_whole_number


class Biases(Baseline):
    """``r(u, i) = mean + b_u + b_i``, each bias shrunk by ``reg`` pseudo-counts; clipped to 1..5.

    Fitted by alternating exact updates: ``b_u = sum(r - mean - b_i) / (n_u + reg)`` and the same for
    items, ``iterations`` times. Ranks items by ``b_i``.
    """

    name = "bias"

    def __init__(self, reg: float = 10.0, iterations: int = 20) -> None:
        self.reg = checked_number("model.baseline.reg", reg, least=0)
        self.iterations = checked_whole_number("model.baseline.iterations", iterations, least=1)

    def fit(self, datamodule: ReviewDataModule) -> None:
        data = datamodule.prepared
        train = data.pairs["train"]
        self.mean = float(train.rating.mean())
        self.user_bias = np.zeros(data.num_users)
        self.item_bias = np.zeros(data.num_items)
        user_count = np.bincount(train.user, minlength=data.num_users)
        item_count = np.bincount(train.item, minlength=data.num_items)
        for _ in range(self.iterations):
            residual = train.rating - self.mean - self.item_bias[train.item]
            self.user_bias = np.bincount(train.user, residual, data.num_users) / (user_count + self.reg)
            residual = train.rating - self.mean - self.user_bias[train.user]
            self.item_bias = np.bincount(train.item, residual, data.num_items) / (item_count + self.reg)

    def user_scores(self, users: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.item_bias).float().expand(len(users), -1)

    def predict_ratings(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.clip(self.mean + self.user_bias[users] + self.item_bias[items], 1.0, 5.0)
