"""Which items each user has, and negative items sampled outside that set."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

MAX_RESAMPLE_ROUNDS = 1000


@dataclass
class UserItemSets:
    """A set of items per user, as sorted ``user * num_items + item`` keys (scales to any size)."""

    keys: np.ndarray
    num_users: int
    num_items: int
    _counts: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> UserItemSets:
        """The sets of these (user, item) pairs; repeated pairs count once."""
        keys = np.unique(np.asarray(users, dtype=np.int64) * num_items + np.asarray(items, dtype=np.int64))
        return cls(keys=keys, num_users=num_users, num_items=num_items)

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Elementwise: does ``users[...]`` have ``items[...]``? (shapes broadcast)."""
        query = np.asarray(users, dtype=np.int64) * self.num_items + np.asarray(items, dtype=np.int64)
        where = np.searchsorted(self.keys, query)
        where = np.minimum(where, max(len(self.keys) - 1, 0))
        return (self.keys[where] == query) if len(self.keys) else np.zeros(query.shape, dtype=bool)

    def rows(self, users: np.ndarray) -> np.ndarray:
        """Dense boolean rows [len(users), num_items]: True where the user has the item."""
        where, items = self.pairs_of(users)
        rows = np.zeros((len(users), self.num_items), dtype=bool)
        rows[where, items] = True
        return rows

    def pairs_of(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in ``users``, item) of every item that the ``users`` have: two arrays, found
        in O(len(users) log n + pairs), never by testing every item."""
        users = np.asarray(users, dtype=np.int64)
        low = np.searchsorted(self.keys, users * self.num_items)
        counts = np.searchsorted(self.keys, (users + 1) * self.num_items) - low
        # The keys of user j are keys[low[j] : low[j] + counts[j]]: the k-th pair overall is the
        # (k - first pair of its user)-th key after its user's low.
        first = np.cumsum(counts) - counts
        positions = np.arange(int(counts.sum())) + np.repeat(low - first, counts)
        return np.repeat(np.arange(len(users)), counts), self.keys[positions] % self.num_items

    def gram(self) -> np.ndarray:
        """``X^T X`` [num_items, num_items] (float64) of the binary users x items matrix ``X`` of these
        sets: for each pair of items, how many users have both. Computed from the sparse pairs, never
        from ``X``, which need not fit in memory (30,000 users x 5,000 items: 1.2 GB as float64)."""
        users, items = self.keys // self.num_items, self.keys % self.num_items
        matrix = sparse.csr_matrix((np.ones(len(self.keys)), (users, items)), shape=(self.num_users, self.num_items))
        return np.asarray((matrix.T @ matrix).toarray(), dtype=np.float64)

    def counts(self) -> np.ndarray:
        """Items per user [num_users] (computed once: the sets never change)."""
        if self._counts is None:
            self._counts = np.bincount(self.keys // self.num_items, minlength=self.num_users)
        return self._counts

    def items_of(self, user: int) -> np.ndarray:
        """The item ids of ``user``, sorted."""
        low, high = np.searchsorted(self.keys, [user * self.num_items, (user + 1) * self.num_items])
        return self.keys[low:high] - user * self.num_items


def sample_negatives(
    users: np.ndarray,
    positives: np.ndarray,
    count: int,
    known: UserItemSets,
    rng: np.random.Generator,
) -> np.ndarray:
    """``[len(users), count]`` items drawn uniformly among items that the user does not have in
    ``known`` and that are not the pair's own positive item.

    Raises ValueError when a user has every item (nothing to sample).
    """
    users = np.asarray(users, dtype=np.int64)
    positives = np.asarray(positives, dtype=np.int64)
    if count == 0 or len(users) == 0:
        return np.zeros((len(users), count), dtype=np.int64)
    available = known.num_items - known.counts()[users] - (~known.contains(users, positives))
    if (available <= 0).any():
        user = int(users[available <= 0][0])
        raise ValueError(f"user index {user} has interacted with every item: no negative to sample")
    negatives = rng.integers(0, known.num_items, size=(len(users), count))
    for _ in range(MAX_RESAMPLE_ROUNDS):
        bad = known.contains(users[:, None], negatives) | (negatives == positives[:, None])
        if not bad.any():
            return negatives
        negatives[bad] = rng.integers(0, known.num_items, size=int(bad.sum()))
    raise RuntimeError("negative sampling did not converge; a user has almost every item")
