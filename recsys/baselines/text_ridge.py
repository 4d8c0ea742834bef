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
from recsys.models.embedding_cache import pretrained_embeddings
from recsys.models.text_encoder import TextEncoder
from recsys.settings import checked_flag, checked_number


@dataclass
class PairFeatures:
    """Features of (user, item) pairs: ``user`` [n, 2 (+H)] and ``item`` [n, 2 (+H)] are the shrunk
    mean rating deviation and log review count of the pair's user (item), followed, with text, by
    its mean review embedding [H]; the regression reads them and, with text, their product."""

    user: np.ndarray
    item: np.ndarray
    text_dim: int

    def matrix(self) -> np.ndarray:
        """[n, d_user + d_item (+ H)]: the columns the regression weights follow."""
        parts = [self.user, self.item]
        if self.text_dim:
            parts.append(self.user[:, -self.text_dim :] * self.item[:, -self.text_dim :])
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
        self.text = checked_flag("model.baseline.text", text)
        self.l2 = checked_number("model.baseline.l2", l2, least=0)
        self.shrinkage = checked_number("model.baseline.shrinkage", shrinkage, least=0)
        bf16 = checked_flag("model.baseline.bf16", bf16)
        self.encoder = encoder if encoder is not None or not text else TextEncoder(
            pretrained_path, trainable_layers=0, bf16=bf16)
        self.embedding_cache_dir = embedding_cache_dir

    def _review_embeddings(self, datamodule: ReviewDataModule) -> np.ndarray:
        if self.encoder is None:
            raise RuntimeError("TextRidge has no text encoder: model.baseline.text is false")
        embeddings = pretrained_embeddings(self.encoder, [datamodule.review_tokens], self.embedding_cache_dir)[0]
        return F.normalize(embeddings.float(), dim=-1).double().numpy()

    def fit(self, datamodule: ReviewDataModule) -> None:
        data = datamodule.prepared
        train = data.pairs["train"]
        self.mean = float(train.rating.mean())
        deviation = train.rating.astype(np.float64) - self.mean
        self.user_count = np.bincount(train.user, minlength=data.num_users).astype(np.float64)
        self.item_count = np.bincount(train.item, minlength=data.num_items).astype(np.float64)
        self.user_deviation = np.bincount(train.user, deviation, data.num_users)
        self.item_deviation = np.bincount(train.item, deviation, data.num_items)
        self.reviews = self._review_embeddings(datamodule) if self.text else None
        self.text_dim = 0 if self.reviews is None else self.reviews.shape[1]
        self.user_text_sum = self.item_text_sum = None
        if self.reviews is not None:
            self.user_text_sum = np.zeros((data.num_users, self.text_dim))
            self.item_text_sum = np.zeros((data.num_items, self.text_dim))
            np.add.at(self.user_text_sum, train.user, self.reviews[train.review])
            np.add.at(self.item_text_sum, train.item, self.reviews[train.review])
        features = self.features(train.user, train.item, own_review=train.review, own_rating=train.rating)
        x = np.hstack([features.matrix(), np.ones((len(train), 1))])
        penalty = self.l2 * np.eye(x.shape[1])
        penalty[-1, -1] = 0.0  # the intercept is not shrunk
        self.weights = np.linalg.solve(x.T @ x + penalty, x.T @ train.rating.astype(np.float64))

    def _side(self, count: np.ndarray, deviation: np.ndarray, text_sum: np.ndarray | None, index: np.ndarray,
              own_review: np.ndarray | None, own_rating: np.ndarray | None) -> np.ndarray:
        """The user (or item) part of the features, leaving out each pair's own review if given."""
        n = count[index] - (own_rating is not None)
        own_deviation = own_rating - self.mean if own_rating is not None else 0.0
        columns = [(deviation[index] - own_deviation) / (n + self.shrinkage), np.log1p(n)]
        if text_sum is None:
            return np.column_stack(columns)
        own_text = self.reviews[own_review] if own_review is not None and self.reviews is not None else 0.0
        return np.hstack([np.column_stack(columns), (text_sum[index] - own_text) / np.maximum(n, 1)[:, None]])

    def user_features(self, users: np.ndarray, own_review: np.ndarray | None = None,
                      own_rating: np.ndarray | None = None) -> np.ndarray:
        """The users' side of the features (shrunk deviation, log count, mean review embedding), ``own_review``
        and ``own_rating`` left out."""
        return self._side(self.user_count, self.user_deviation, self.user_text_sum, users, own_review, own_rating)

    def item_features(self, items: np.ndarray, own_review: np.ndarray | None = None,
                      own_rating: np.ndarray | None = None) -> np.ndarray:
        """The items' side of the features, as :meth:`user_features`."""
        return self._side(self.item_count, self.item_deviation, self.item_text_sum, items, own_review, own_rating)

    def features(self, users: np.ndarray, items: np.ndarray, own_review: np.ndarray | None = None,
                 own_rating: np.ndarray | None = None) -> PairFeatures:
        """Features of pairs; ``own_review``/``own_rating`` (training pairs) are left out of them."""
        return PairFeatures(self.user_features(users, own_review, own_rating),
                            self.item_features(items, own_review, own_rating), self.text_dim)

    def predict_ratings(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        x = self.features(np.asarray(users), np.asarray(items)).matrix()
        return np.clip(x @ self.weights[:-1] + self.weights[-1], 1.0, 5.0)

    def user_scores(self, users: np.ndarray) -> torch.Tensor:
        # Linear in a user part, an item part and one user x item text product: every item's score
        # without a (user, item) x feature matrix.
        user = self.user_features(np.asarray(users))
        item = self.item_features(np.arange(len(self.item_count)))
        w_user, w_item = self.weights[: user.shape[1]], self.weights[user.shape[1] : user.shape[1] + item.shape[1]]
        scores = (user @ w_user)[:, None] + (item @ w_item)[None, :] + self.weights[-1]
        if self.text_dim:
            w_product = self.weights[user.shape[1] + item.shape[1] : -1]
            scores += (user[:, -self.text_dim :] * w_product) @ item[:, -self.text_dim :].T
        return torch.from_numpy(scores).float()
