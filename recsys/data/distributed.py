"""Samplers for distributed (DDP) runs: which pairs each process trains and evaluates on."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Dataset, DistributedSampler


class UserShardSampler(DistributedSampler):
    """Evaluation pairs of one process: those of the users ``u`` with ``u % num_replicas == rank``,
    in order, with no padding.

    Lightning's default distributed sampler repeats pairs to even out the shards, and splits a
    user's pairs across processes; here every pair is evaluated once and every user on exactly one
    process, so summed metrics (RMSE through torchmetrics, ranking metrics through an all-reduce of
    per-user sums) equal a single-process evaluation.
    """

    def __init__(self, dataset: Dataset, pair_users: np.ndarray, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.positions = np.flatnonzero(np.asarray(pair_users) % num_replicas == rank).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.positions)

    def __len__(self) -> int:
        return len(self.positions)
