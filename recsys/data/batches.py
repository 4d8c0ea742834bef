"""Batches of (user, item) pairs with everything the two towers read, and the collator making them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from recsys.data.negatives import UserItemSets, sample_negatives
from recsys.data.prepared import SplitPairs
from recsys.data.texts import UserHistories
from recsys.data.tokenization import TokenizedTexts


@dataclass
class PairBatch:
    """A batch of B pairs. H is the longest history in the batch (at least 1), N the number of
    sampled negatives, U the number of distinct items in the batch (positives and negatives),
    L the longest item document in tokens.

    - ``user, item`` [B] long, ``rating`` [B] float: the pairs.
    - ``negatives`` [B, N] long: sampled items that the user has not interacted with in training.
    - ``history_reviews`` [B, H] long: rows of the training-review table (0 where masked);
      ``history_items`` [B, H] long, ``history_ratings`` [B, H] float; ``history_mask`` [B, H]
      bool, True for real entries. For a training pair its own review is never in its history.
    - ``batch_items`` [U] long: the distinct items of the batch; ``item_slot`` [B] and
      ``negative_slot`` [B, N] index into it; ``item_input_ids``/``item_attention_mask`` [U, L]
      are their documents' tokens, so each item is encoded once per batch.
    - ``user_has_batch_item`` [B, U] bool: the user has that batch item in training (or it is
      the pair's own item), so it must not count as a negative for that user.
    """

    user: torch.Tensor
    item: torch.Tensor
    rating: torch.Tensor
    negatives: torch.Tensor
    history_reviews: torch.Tensor
    history_items: torch.Tensor
    history_ratings: torch.Tensor
    history_mask: torch.Tensor
    batch_items: torch.Tensor
    item_slot: torch.Tensor
    negative_slot: torch.Tensor
    item_input_ids: torch.Tensor
    item_attention_mask: torch.Tensor
    user_has_batch_item: torch.Tensor

    def __len__(self) -> int:
        return int(self.user.shape[0])


@dataclass
class HistoryBatch:
    """The review histories of B users, padded to the longest (at least 1): the user-tower input
    of :class:`PairBatch` without any target pair (used for exports and new users)."""

    history_reviews: torch.Tensor
    history_items: torch.Tensor
    history_ratings: torch.Tensor
    history_mask: torch.Tensor
    user: torch.Tensor | None = None


def pad_histories(rows: list[np.ndarray], review_items: np.ndarray, review_ratings: np.ndarray,
                  users: np.ndarray | None = None) -> HistoryBatch:
    """Pad per-user lists of training-review indices into a :class:`HistoryBatch`."""
    width = max(1, max((len(r) for r in rows), default=0))
    history = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=bool)
    for b, row in enumerate(rows):
        history[b, : len(row)] = row
        mask[b, : len(row)] = True
    safe = history if len(review_items) else np.zeros_like(history)
    items = np.where(mask, review_items[safe] if len(review_items) else 0, 0)
    ratings = np.where(mask, review_ratings[safe] if len(review_ratings) else 0.0, 0.0).astype(np.float32)
    return HistoryBatch(torch.from_numpy(history), torch.from_numpy(items), torch.from_numpy(ratings),
                        torch.from_numpy(mask), None if users is None else torch.as_tensor(users, dtype=torch.long))


class PairIndexDataset(Dataset):
    """Positions 0..n-1 of a split's pairs; the collator turns a list of positions into a batch."""

    def __init__(self, num_pairs: int) -> None:
        self.num_pairs = num_pairs

    def __len__(self) -> int:
        return self.num_pairs

    def __getitem__(self, index: int) -> int:
        return index


class PairCollator:
    """Builds :class:`PairBatch` from pair positions.

    Negatives are drawn fresh for every batch from ``seed`` (in a DataLoader worker, from ``seed``
    and the batch's pair positions), unless ``fixed_negatives`` [num_pairs, N] is given, as it
    is for validation and test so that their losses are comparable across epochs.
    """

    def __init__(
        self,
        pairs: SplitPairs,
        histories: UserHistories,
        review_items: np.ndarray,
        review_ratings: np.ndarray,
        train_items: UserItemSets,
        item_tokens: TokenizedTexts,
        num_negatives: int,
        max_reviews: int,
        seed: int = 0,
        fixed_negatives: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.pairs = pairs
        self.histories = histories
        self.review_items = review_items
        self.review_ratings = review_ratings
        self.train_items = train_items
        self.item_tokens = item_tokens
        self.num_negatives = num_negatives
        self.max_reviews = max_reviews
        self.seed = seed
        self.fixed_negatives = fixed_negatives
        self._rng = rng if rng is not None else np.random.default_rng(seed)

    def _generator(self, positions: np.ndarray) -> np.random.Generator:
        if get_worker_info() is None:
            return self._rng  # one stream, which the datamodule's state (and so a checkpoint) keeps
        # In a DataLoader worker, a stream of the batch's own, from the seed and its pairs in their
        # shuffled order: the same for any number of workers, and after a resume, where the workers'
        # own streams would start again.
        return np.random.default_rng([self.seed, *positions.tolist()])

    def negatives_for(self, positions: np.ndarray) -> np.ndarray:
        """[len(positions), num_negatives] item ids: the fixed ones (evaluation) or freshly sampled ones that the
        pair's user does not have in training."""
        if self.fixed_negatives is not None:
            return self.fixed_negatives[positions]
        return sample_negatives(
            self.pairs.user[positions], self.pairs.item[positions], self.num_negatives,
            self.train_items, self._generator(positions),
        )

    def _histories(self, users: np.ndarray, reviews: np.ndarray) -> list[np.ndarray]:
        return [
            self.histories.of(int(u), self.max_reviews, exclude_review=int(r))
            for u, r in zip(users, reviews, strict=True)
        ]

    def __call__(self, indices: list[int]) -> PairBatch:
        positions = np.asarray(indices, dtype=np.int64)
        users = self.pairs.user[positions]
        items = self.pairs.item[positions]
        negatives = self.negatives_for(positions)

        history = pad_histories(self._histories(users, self.pairs.review[positions]), self.review_items,
                                self.review_ratings)

        batch_items, inverse = np.unique(np.concatenate([items, negatives.ravel()]), return_inverse=True)
        item_slot = inverse[: len(items)]
        negative_slot = inverse[len(items) :].reshape(negatives.shape)
        input_ids, attention_mask = self.item_tokens.pad(batch_items)
        has_item = self.train_items.contains(users[:, None], batch_items[None, :])
        has_item |= batch_items[None, :] == items[:, None]

        return PairBatch(
            user=torch.from_numpy(users),
            item=torch.from_numpy(items),
            rating=torch.from_numpy(self.pairs.rating[positions]),
            negatives=torch.from_numpy(negatives.astype(np.int64)),
            history_reviews=history.history_reviews,
            history_items=history.history_items,
            history_ratings=history.history_ratings,
            history_mask=history.history_mask,
            batch_items=torch.from_numpy(batch_items),
            item_slot=torch.from_numpy(item_slot),
            negative_slot=torch.from_numpy(negative_slot),
            item_input_ids=input_ids,
            item_attention_mask=attention_mask,
            user_has_batch_item=torch.from_numpy(has_item),
        )
