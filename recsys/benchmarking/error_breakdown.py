"""Where a model's errors lie on a held-out split: rating error by the true stars, and recall by how
popular the users' held-out items are, each beside reference models fitted on the same training split.

Two questions a single RMSE or recall@10 does not answer: is the rating error spread over every
rating or concentrated in the rare low ones, and does the ranking find the users' rarely bought
items or only the popular ones. ``python scripts/evaluate.py ckpt=... breakdown=true`` writes the
tables beside the run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from pytorch_lightning.utilities import move_data_to_device

from recsys.baselines.bias import Biases
from recsys.baselines.ease import EASE
from recsys.baselines.popularity import Popularity
from recsys.benchmarking.evaluation import USER_CHUNK, network_scorer
from recsys.data.datamodule import ReviewDataModule
from recsys.data.negatives import UserItemSets
from recsys.training.ranking import ranking_metrics, top_k_from_scores
from recsys.training.report import markdown_table

if TYPE_CHECKING:
    from recsys.training.module import TwoTowerModule

log = logging.getLogger(__name__)

# Bins of the mean training interactions of a user's held-out items: (0, 5], (5, 10], (10, 20], > 20.
POPULARITY_EDGES = (0.0, 5.0, 10.0, 20.0, math.inf)
NEW_ITEMS_ONLY = "0 (new items only)"
# EASE, the reference ranking, is dense: users x items for its input, items x items for its weights.
EASE_MAX_ITEMS = 20_000
EASE_MAX_CELLS = 50_000_000
EASE_L2 = 200.0
MODEL = "model"


@dataclass
class ErrorBreakdown:
    """The two tables: ``rating`` (one row per star level and ``all``) and ``recall`` (one row per
    popularity bin and ``all``), with the cut-off ``k`` of the recall."""

    rating: pd.DataFrame
    recall: pd.DataFrame
    k: int


def rating_error_by_stars(ratings: np.ndarray, predictions: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per star level found in ``ratings`` [n], and a last row ``all``: the pairs, their
    share of all pairs, and for each model of ``predictions`` (name -> [n] predicted stars) the mean
    prediction, the RMSE and the level's share of the model's summed squared error."""
    ratings = np.asarray(ratings, dtype=np.float64)
    levels: list[tuple[str, np.ndarray]] = [(f"{level:g}", ratings == level) for level in np.unique(ratings)]
    levels.append(("all", np.ones(len(ratings), dtype=bool)))
    predicted = {name: np.asarray(values, dtype=np.float64) for name, values in predictions.items()}
    squared = {name: (values - ratings) ** 2 for name, values in predicted.items()}
    rows = []
    for label, chosen in levels:
        row: dict[str, object] = {"stars": label, "pairs": int(chosen.sum()), "share of pairs": chosen.mean()}
        for name, values in predicted.items():
            row[f"{name}: mean predicted"] = float(values[chosen].mean())
            row[f"{name}: RMSE"] = float(np.sqrt(squared[name][chosen].mean()))
            row[f"{name}: share of squared error"] = float(squared[name][chosen].sum() / squared[name].sum())
        rows.append(row)
    return pd.DataFrame(rows)


def held_out_popularity(users: np.ndarray, relevant: UserItemSets, item_counts: np.ndarray) -> np.ndarray:
    """[len(users)] the mean training interactions of each user's relevant items (NaN without one)."""
    owners, items = np.divmod(relevant.keys, relevant.num_items)
    sums = np.bincount(owners, np.asarray(item_counts, dtype=np.float64)[items], minlength=relevant.num_users)
    counts = relevant.counts()
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)[np.asarray(users, dtype=np.int64)]


def popularity_bin_labels(edges: Sequence[float]) -> list[str]:
    """``(0, 5]``-style labels of the bins between ``edges``; the last, open one reads ``> 20``."""
    return [f"> {low:g}" if math.isinf(high) else f"({low:g}, {high:g}]"
            for low, high in zip(edges[:-1], edges[1:], strict=True)]


def recall_by_popularity(users: np.ndarray, relevant: UserItemSets, item_counts: np.ndarray,
                         rankings: Mapping[str, np.ndarray], k: int = 10,
                         edges: Sequence[float] = POPULARITY_EDGES) -> pd.DataFrame:
    """Recall@k of each ranking (name -> top items [len(users), >= k]) averaged over the users of
    each bin of :func:`held_out_popularity` (bins right-closed between ``edges``), and over every user
    with a relevant item (the row ``all``, which is the ranking metrics' recall@k). Users whose
    held-out items all have no training interaction (data that is not k-core) come first, in a row
    of their own, where any are."""
    popularity = held_out_popularity(users, relevant, item_counts)
    ranked = ~np.isnan(popularity)
    new_only = ranked & (popularity == 0)
    bins = np.digitize(popularity, edges[1:-1], right=True)
    groups = [(NEW_ITEMS_ONLY, new_only)] if new_only.any() else []
    groups += [(label, ranked & ~new_only & (bins == index))
               for index, label in enumerate(popularity_bin_labels(edges))]
    groups.append(("all", ranked))
    rows = []
    for label, chosen in groups:
        row: dict[str, object] = {"held-out items' training interactions": label, "users": int(chosen.sum())}
        for name, top in rankings.items():
            recall = ranking_metrics(torch.from_numpy(np.asarray(top)[chosen]), users[chosen], relevant, [k])
            row[f"{name}: recall@{k}"] = recall[f"recall@{k}"] if chosen.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


@torch.no_grad()
def predicted_ratings(module: TwoTowerModule, datamodule: ReviewDataModule, split: str,
                      batch_size: int = 256) -> np.ndarray:
    """The module's predicted stars [n] of the pairs of ``split``, in the split's order."""
    module.eval()
    collate = datamodule.collator(split)
    count = len(datamodule.prepared.pairs[split])
    predictions = []
    for start in range(0, count, batch_size):
        batch = move_data_to_device(collate(list(range(start, min(start + batch_size, count)))), module.device)
        predictions.append(module.pair_predictions(batch)[2].float().cpu().numpy())
    return np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.float32)


def _top_items(user_scores: Callable[[np.ndarray], torch.Tensor], users: np.ndarray, k: int,
               datamodule: ReviewDataModule) -> np.ndarray:
    data = datamodule.prepared
    return top_k_from_scores(lambda a, b: user_scores(users[a:b]), users, k, data.train_items, USER_CHUNK,
                             data.num_items).numpy()


def model_error_breakdown(module: TwoTowerModule, datamodule: ReviewDataModule, split: str,
                          k: int = 10) -> ErrorBreakdown:
    """The module's breakdown on ``split`` beside the user + item biases (ratings), EASE (λ = 200,
    where the data is small enough for its dense matrices) and most popular (rankings), all fitted
    on the training split. Rankings exclude training items and count the split's relevant items,
    as the module's own ranking metrics do."""
    data = datamodule.prepared
    pairs = data.pairs[split]
    biases = Biases()
    biases.fit(datamodule)
    rating = rating_error_by_stars(pairs.rating, {
        MODEL: predicted_ratings(module, datamodule, split),
        "biases": biases.predict_ratings(pairs.user, pairs.item),
    })
    users = np.unique(pairs.user)
    references: list[tuple[str, Popularity | EASE]] = [("most popular", Popularity())]
    if data.num_items <= EASE_MAX_ITEMS and data.num_users * data.num_items <= EASE_MAX_CELLS:
        references.insert(0, (f"EASE (λ = {EASE_L2:g})", EASE(l2=EASE_L2)))
    else:
        log.info("EASE left out of the breakdown: %d users x %d items is beyond its dense matrices",
                 data.num_users, data.num_items)
    rankings = {MODEL: _top_items(network_scorer(module, datamodule), users, k, datamodule)}
    for name, reference in references:
        reference.fit(datamodule)
        rankings[name] = _top_items(reference.user_scores, users, k, datamodule)
    recall = recall_by_popularity(users, datamodule.held_out_items(split), data.item_train_counts(), rankings, k)
    return ErrorBreakdown(rating=rating, recall=recall, k=k)


def breakdown_markdown(breakdown: ErrorBreakdown, title: str) -> str:
    """The two tables as Markdown under ``title``, each with a line on how to read it."""
    rating = breakdown.rating.round(4)
    recall = breakdown.recall.round(4)
    return (
        f"# {title}\n\n"
        "## Rating error by the true stars\n\n"
        "Each star level's pairs, the mean prediction, the RMSE, and the level's share of the summed squared error "
        f"(user + item biases fitted on the training split beside the model).\n\n{markdown_table(rating)}\n"
        f"## Recall@{breakdown.k} by how popular the users' held-out items are\n\n"
        "Users binned by the mean number of training interactions of their held-out (relevant) items "
        f"(`{NEW_ITEMS_ONLY}`: items with none, cold start); the row `all` is the split's "
        f"recall@{breakdown.k}.\n\n{markdown_table(recall)}"
    )


def write_breakdown(breakdown: ErrorBreakdown, path: Path, title: str) -> Path:
    """The breakdown as Markdown at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(breakdown_markdown(breakdown, title))
    return path
