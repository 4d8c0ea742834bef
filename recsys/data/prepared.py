"""Assemble everything the model reads from a dataset: indices, split pairs, histories, texts.

All review-derived text comes from the training split (see :mod:`recsys.data.texts`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.loading import load_tables
from recsys.data.negatives import UserItemSets
from recsys.data.sources import DatasetFiles, locate
from recsys.data.splits import (
    SPLIT_NAMES,
    SplitSpec,
    cold_start_pairs,
    describe_cold_start,
    load_or_create_split,
    split_fingerprints,
)
from recsys.data.texts import (
    TokenCounter,
    UserHistories,
    build_item_documents,
    build_user_histories,
    count_words,
    review_documents,
)
from recsys.data.validation import BadLinePolicy, ReadReport

log = logging.getLogger(__name__)


@dataclass
class SplitPairs:
    """The (user, item, rating) pairs of one split, as indices. ``review`` is the pair's row in the
    training-review table for training pairs, and -1 for held-out pairs."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    review: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


@dataclass
class PreparedData:
    """A dataset ready for training: ids, split pairs, training histories and documents."""

    name: str
    user_ids: pd.Index
    item_ids: pd.Index
    interactions: pd.DataFrame
    train_reviews: pd.DataFrame
    pairs: dict[str, SplitPairs]
    histories: UserHistories
    train_items: UserItemSets
    item_documents: pd.DataFrame
    review_texts: list[str]
    reports: list[ReadReport]
    cache_dir: Path
    # sha256 of the interactions ("data") and of their split assignment ("split"): what a checkpoint
    # records, so that it is never evaluated or resumed on other data.
    fingerprints: dict[str, str]

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def item_train_counts(self) -> np.ndarray:
        """Number of training interactions of each item (its popularity in training)."""
        return np.bincount(self.pairs["train"].item, minlength=self.num_items)

    def held_out_items(self, split: str, min_rating: float | None = None) -> UserItemSets:
        """The items of ``split`` per user (the relevant items of ranking metrics), optionally only
        those rated at least ``min_rating``."""
        pairs = self.pairs[split]
        keep = np.ones(len(pairs), dtype=bool) if min_rating is None else pairs.rating >= min_rating
        return UserItemSets.from_pairs(pairs.user[keep], pairs.item[keep], self.num_users, self.num_items)


def _pairs(table: pd.DataFrame, users: pd.Index, items: pd.Index, with_reviews: bool) -> SplitPairs:
    return SplitPairs(
        user=users.get_indexer(table["user_id"]).astype(np.int64),
        item=items.get_indexer(table["item_id"]).astype(np.int64),
        rating=table["rating"].to_numpy(dtype=np.float32),
        review=np.arange(len(table), dtype=np.int64) if with_reviews else np.full(len(table), -1, dtype=np.int64),
    )


def prepare_dataset(
    dataset: DatasetFiles,
    data_dir: str | Path | None,
    cache_dir: str | Path,
    split: SplitSpec,
    on_bad_line: BadLinePolicy | str = BadLinePolicy.ERROR,
    item_max_tokens: int = 256,
    count_tokens: TokenCounter = count_words,
) -> PreparedData:
    """Read (or reuse) the parsed tables and the split, and build indices, histories and documents.

    User and item indices are positions in the sorted id lists of the whole dataset, so a user
    or item seen only in validation or test still has an index (and an empty history or a
    document from no reviews).
    """
    files = locate(dataset, data_dir)
    tables = load_tables(files, on_bad_line, Path(cache_dir))
    interactions = tables.interactions.copy()
    interactions["split"] = load_or_create_split(interactions, split, tables.cache_dir / "splits").to_numpy()
    fingerprints = split_fingerprints(split, tables.cache_dir / "splits")
    if (cold_start := describe_cold_start(cold_start_pairs(interactions))) is not None:
        log.info(cold_start)

    user_ids = pd.Index(np.sort(interactions["user_id"].unique().astype(str)), name="user_id")
    item_ids = pd.Index(np.sort(interactions["item_id"].unique().astype(str)), name="item_id")
    by_split = {name: interactions[interactions["split"] == name].reset_index(drop=True) for name in SPLIT_NAMES}
    train = by_split["train"]
    if train.empty:
        raise ValueError(f"The training split of {dataset.name} is empty ({split}); nothing to train on.")
    pairs = {name: _pairs(table, user_ids, item_ids, name == "train") for name, table in by_split.items()}

    return PreparedData(
        name=dataset.name,
        user_ids=user_ids,
        item_ids=item_ids,
        interactions=interactions,
        train_reviews=train,
        pairs=pairs,
        histories=build_user_histories(train, user_ids),
        train_items=UserItemSets.from_pairs(pairs["train"].user, pairs["train"].item, len(user_ids), len(item_ids)),
        item_documents=build_item_documents(item_ids, train, tables.items, item_max_tokens, count_tokens),
        review_texts=review_documents(train),
        reports=tables.reports,
        cache_dir=tables.cache_dir,
        fingerprints=fingerprints,
    )
