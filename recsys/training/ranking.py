"""Top-K retrieval by cosine over the whole catalog, ranking metrics computed from it, and the
per-user z-scores that fuse cosine with EASE (the hybrid ranking; serving imports them too, so this
module stays free of Lightning).

Scores are computed for a chunk of users at a time, so memory is ``chunk x num_items`` however
many users there are; only each user's top K is kept.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from recsys.data.negatives import UserItemSets

RANKING_METRICS = ("precision", "recall", "ndcg", "hit_rate", "mrr")


@torch.no_grad()
def top_k_from_scores(
    scores_of: Callable[[int, int], torch.Tensor], users: np.ndarray, k: int, exclude: UserItemSets | None,
    chunk: int, num_items: int,
) -> torch.Tensor:
    """Top-k [len(users), k] from ``scores_of(start, stop)``, the [stop - start, num_items] scores of
    users ``users[start:stop]``, computed one chunk at a time. Excluded items rank below every other
    item: they appear only where a user has fewer than k others (ranking metrics count them as misses,
    since held-out items are never excluded ones)."""
    k = min(k, num_items)
    result = torch.empty(len(users), k, dtype=torch.long)
    for start in range(0, len(users), chunk):
        scores = scores_of(start, min(start + chunk, len(users))).clone().float()
        if exclude is not None:
            rows, cols = exclude.pairs_of(users[start : start + chunk])
            scores[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")
        result[start : start + chunk] = scores.topk(k, dim=1).indices
    return result


def ranking_metrics(
    top_items: torch.Tensor, users: np.ndarray, relevant: UserItemSets, ks: list[int] | tuple[int, ...],
) -> dict[str, float]:
    """precision, recall, NDCG, hit rate and MRR at each K, averaged over the users that have at
    least one relevant item (users without one are skipped, as torchmetrics' ``skip`` does).

    ``top_items`` [n, m] are the users' ranked items (m < K only when the catalog is smaller than K:
    the missing positions count as misses); ``relevant`` their held-out items.
    Binary relevance; recall divides by the number of relevant items; NDCG's ideal DCG places
    min(K, #relevant) hits first; MRR is 1/rank of the first hit within K (0 if none).
    """
    hits = torch.from_numpy(relevant.contains(users[:, None], top_items.numpy()))
    num_relevant = torch.from_numpy(relevant.counts()[users]).float()
    keep = num_relevant > 0
    hits, num_relevant = hits[keep].float(), num_relevant[keep]
    if max(ks) > hits.shape[1]:
        # A catalog smaller than K: the positions past its end are misses.
        hits = torch.nn.functional.pad(hits, (0, max(ks) - hits.shape[1]))
    discounts = 1.0 / torch.log2(torch.arange(2, hits.shape[1] + 2, dtype=torch.float))
    metrics: dict[str, float] = {}
    for k in ks:
        top = hits[:, :k]
        found = top.sum(1)
        dcg = (top * discounts[:k]).sum(1)
        ideal = torch.stack([discounts[: int(min(n, k))].sum() for n in num_relevant.tolist()]) if len(top) else dcg
        first = torch.where(top.any(1), 1.0 / (top.argmax(1).float() + 1), torch.zeros_like(found))
        values = {
            "precision": found / k,
            "recall": found / num_relevant,
            "ndcg": dcg / ideal,
            "hit_rate": (found > 0).float(),
            "mrr": first,
        }
        for name, value in values.items():
            metrics[f"{name}@{k}"] = float(value.mean()) if len(value) else 0.0
    metrics["ranked_users"] = int(keep.sum())
    return metrics


# Catalogs from which EASE scores are a sparse product: a user's row holds a handful of items,
# so it sums that many rows of the weights (20,000 items, 128 users: 10 ms against 720 ms dense).
# Below it the dense product takes about a millisecond a batch, and it is what every figure of
# the README was measured with (the sparse one sums in another order: 1e-7 apart).
SPARSE_EASE_ITEMS = 2048


def ease_scores(training_rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """EASE scores [B, I] of every catalog item: users' boolean training rows [B, I] times the
    item-item ``weights`` [I, I]."""
    rows = training_rows.to(weights.dtype)
    if weights.shape[0] < SPARSE_EASE_ITEMS:
        return rows @ weights
    return torch.sparse.mm(rows.to_sparse(), weights)


def standardised(scores: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Each row's scores as z-scores over its candidates (others 0), so that a teacher
    temperature means the same whatever the scale of the raw scores (EASE's shrinks with l2)."""
    count = candidates.sum(-1, keepdim=True).clamp(min=1)
    kept = scores.masked_fill(~candidates, 0.0)
    mean = kept.sum(-1, keepdim=True) / count
    spread = ((kept - mean).masked_fill(~candidates, 0.0).pow(2).sum(-1, keepdim=True) / count).sqrt()
    return ((kept - mean) / spread.clamp(min=1e-12)).masked_fill(~candidates, 0.0)


def fused_scores(cosines: torch.Tensor, teacher_scores: torch.Tensor, candidates: torch.Tensor,
                 weight: float) -> torch.Tensor:
    """Hybrid ranking scores: z(cosine) + ``weight`` z(teacher), each row's z-scores over its
    ``candidates`` (others 0). Per-user z-scores put the two on one scale whatever the teacher's
    L2 or the cosine temperature; within a row the order equals that of cosine + c x teacher,
    c = weight x spread(cosine) / spread(teacher)."""
    return standardised(cosines, candidates) + weight * standardised(teacher_scores, candidates)
