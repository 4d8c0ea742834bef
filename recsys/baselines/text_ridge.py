"""Star ratings by ridge regression on rating biases and pretrained review-text features.

A yardstick for the rating side of the two-tower model: how much do review texts add to user and
item biases when predicting stars?
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recsys.baselines.base import Baseline
from recsys.data.datamodule import ReviewDataModule
from recsys.models.embedding_cache import cached_embeddings
from recsys.models.text_encoder import TextEncoder


@dataclass
class PairFeatures:
    """Features of (user, item) pairs: ``scalars`` [n, 4] (user and item shrunk mean deviation,
    log review counts) and, with text, the mean review embeddings of the user and of the item [n, H]."""

    scalars: np.ndarray
    user_text: np.ndarray | None
    item_text: np.ndarray | None

    def matrix(self) -> np.ndarray:
        parts = [self.scalars]
        if self.user_text is not None:
            parts += [self.user_text, self.item_text, self.user_text * self.item_text]
        return np.hstack(parts)


class TextRidge(Baseline):
    """``rating = w . features(user, item) + b``, fitted in closed form with an L2 penalty ``l2``.

    Features (see :class:`PairFeatures`) come from the training reviews; for a training pair they
    leave out the pair's own review and rating, so that training pairs look like held-out ones
    (whose review is never seen). With ``text``, the user's and the item's mean pretrained review
    embedding (unit-normalised reviews) and their element-wise product are added. ``text=False``
    is a leave-one-out bias model, the same regression without the texts. Ranks items by
    predicted rating.
    """

    name = "text_ridge"

    def __init__(self, text: bool = True, l2: float = 10.0, shrinkage: float = 5.0,
                 pretrained_path: str | None = None, bf16: bool = True, embedding_cache_dir: str | None = None,
                 encoder: TextEncoder | None = None) -> None:
        if l2 < 0 or shrinkage < 0:
            raise ValueError(f"model.baseline.l2={l2} and shrinkage={shrinkage} must be >= 0")
        self.text = text
        self.l2 = l2
        self.shrinkage = shrinkage
        self.encoder = encoder if encoder is not None or not text else TextEncoder(
            pretrained_path, trainable_layers=0, bf16=bf16)
        self.embedding_cache_dir = embedding_cache_dir

    def _review_embeddings(self, datamodule: ReviewDataModule) -> np.ndarray:
        tokens = datamodule.review_tokens
        embeddings = cached_embeddings(self.embedding_cache_dir, self.encoder.pretrained_fingerprint(), tokens,
                                       lambda: self.encoder.encode(tokens, pretrained=True))
        return F.normalize(embeddings.float(), dim=-1).double().numpy()

    def fit(self, datamodule: ReviewDataModule) -> None:
        data = datamodule.data
        train = data.pairs["train"]
        self.mean = float(train.rating.mean())
        deviation = train.rating.astype(np.float64) - self.mean
        self.user_count = np.bincount(train.user, minlength=data.num_users).astype(np.float64)
        self.item_count = np.bincount(train.item, minlength=data.num_items).astype(np.float64)
        self.user_deviation = np.bincount(train.user, deviation, data.num_users)
        self.item_deviation = np.bincount(train.item, deviation, data.num_items)
        self.reviews = self._review_embeddings(datamodule) if self.text else None
        if self.reviews is not None:
            self.user_text_sum = np.zeros((data.num_users, self.reviews.shape[1]))
            self.item_text_sum = np.zeros((data.num_items, self.reviews.shape[1]))
            np.add.at(self.user_text_sum, train.user, self.reviews[train.review])
            np.add.at(self.item_text_sum, train.item, self.reviews[train.review])
        features = self.features(train.user, train.item, own_review=train.review, own_rating=train.rating)
        x = np.hstack([features.matrix(), np.ones((len(train), 1))])
        penalty = self.l2 * np.eye(x.shape[1])
        penalty[-1, -1] = 0.0  # the intercept is not shrunk
        self.weights = np.linalg.solve(x.T @ x + penalty, x.T @ train.rating.astype(np.float64))

    def features(self, users: np.ndarray, items: np.ndarray, own_review: np.ndarray | None = None,
                 own_rating: np.ndarray | None = None) -> PairFeatures:
        """Features of pairs; ``own_review``/``own_rating`` (training pairs) are left out of them."""
        leave_out = own_rating is not None
        own_deviation = own_rating - self.mean if leave_out else 0.0
        user_n = self.user_count[users] - leave_out
        item_n = self.item_count[items] - leave_out
        scalars = np.column_stack([
            (self.user_deviation[users] - own_deviation) / (user_n + self.shrinkage),
            (self.item_deviation[items] - own_deviation) / (item_n + self.shrinkage),
            np.log1p(user_n), np.log1p(item_n),
        ])
        if self.reviews is None:
            return PairFeatures(scalars, None, None)
        own_text = self.reviews[own_review] if leave_out else 0.0
        user_text = (self.user_text_sum[users] - own_text) / np.maximum(user_n, 1)[:, None]
        item_text = (self.item_text_sum[items] - own_text) / np.maximum(item_n, 1)[:, None]
        return PairFeatures(scalars, user_text, item_text)

    def predict_ratings(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        x = self.features(np.asarray(users), np.asarray(items)).matrix()
        return np.clip(x @ self.weights[:-1] + self.weights[-1], 1.0, 5.0)

    def user_scores(self, users: np.ndarray) -> torch.Tensor:
        # The model is linear in separable user and item parts plus one user x item product term,
        # so every item's score is computed without building a pair x feature matrix.
        users = np.asarray(users)
        items = np.arange(len(self.item_count))
        w = self.weights
        user_part = self.features(users, np.zeros(len(users), dtype=np.int64))
        item_part = self.features(np.zeros(len(items), dtype=np.int64), items)
        user_scalars = user_part.scalars[:, [0, 2]] @ w[[0, 2]]  # user deviation, log count
        item_scalars = item_part.scalars[:, [1, 3]] @ w[[1, 3]]  # item deviation, log count
        scores = user_scalars[:, None] + item_scalars[None, :]
        if self.reviews is not None:
            h = self.reviews.shape[1]
            w_user, w_item, w_product = w[4 : 4 + h], w[4 + h : 4 + 2 * h], w[4 + 2 * h : 4 + 3 * h]
            scores += (user_part.user_text @ w_user)[:, None] + (item_part.item_text @ w_item)[None, :]
            scores += (user_part.user_text * w_product) @ item_part.item_text.T
        return torch.from_numpy(scores + w[-1]).float()
