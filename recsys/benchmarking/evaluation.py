"""One evaluation for every model: rating error, ranking metrics, coverage and popularity."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from recsys.data.datamodule import ReviewDataModule
from recsys.training.ranking import ranking_metrics, top_k_from_scores

if TYPE_CHECKING:
    from recsys.training.module import TwoTowerModule

CURVE_K = 50
USER_CHUNK = 512


def evaluate_scorer(
    user_scores: Callable[[np.ndarray], torch.Tensor],
    predict_ratings: Callable[[np.ndarray, np.ndarray], np.ndarray | None] | None,
    datamodule: ReviewDataModule, split: str, ks: Sequence[int] = (5, 10, 20), curve_k: int = CURVE_K,
) -> dict[str, float]:
    """Metrics of a model on ``split`` (keys ``<split>/<metric>``).

    ``user_scores(users)`` gives [n, num_items] scores; rankings exclude each user's training items
    and count the split's held-out items as relevant (those rated at least the datamodule's
    ``relevance_min_rating`` when it is set). Also: ``coverage@10`` (share of the catalog in
    anyone's top 10), ``popularity@10`` (mean training count of recommended items), ``recall@K``
    for K = 1..``curve_k``, and RMSE/MAE when ``predict_ratings`` gives stars.
    """
    data = datamodule.prepared
    pairs = data.pairs[split]
    users = np.unique(pairs.user)
    top = top_k_from_scores(lambda a, b: user_scores(users[a:b]), users, max(curve_k, *ks), data.train_items,
                            USER_CHUNK, data.num_items)
    relevant = datamodule.held_out_items(split)
    metrics = ranking_metrics(top, users, relevant, sorted(set(ks) | set(range(1, curve_k + 1))))
    top10 = top[:, :10].numpy()
    metrics["coverage@10"] = len(np.unique(top10)) / data.num_items
    metrics["popularity@10"] = float(data.item_train_counts()[top10].mean())
    predicted = predict_ratings(pairs.user, pairs.item) if predict_ratings is not None else None
    if predicted is not None:
        error = np.asarray(predicted, dtype=np.float64) - pairs.rating
        metrics["rmse"] = float(np.sqrt(np.mean(error**2)))
        metrics["mae"] = float(np.mean(np.abs(error)))
    return {f"{split}/{name}": float(value) for name, value in metrics.items()}


@torch.no_grad()
def network_scorer(module: TwoTowerModule, datamodule: ReviewDataModule) -> Callable[[np.ndarray], torch.Tensor]:
    """``user_scores`` of a trained network's module (two-tower or MF): the scores its own
    validation and test rank by (:meth:`TwoTowerModule.ranking_scores`: cosine of user and catalog
    vectors, or its hybrid with EASE)."""
    module.eval()
    items = module.net.catalog_vectors(datamodule.num_items)

    def scores(users: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return module.ranking_scores(module.net.user_vectors(datamodule.history_batch(users)), users, items)

    return scores
