import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.retrieval import (
    RetrievalHitRate,
    RetrievalMRR,
    RetrievalNormalizedDCG,
    RetrievalPrecision,
    RetrievalRecall,
)

from recsys.data.negatives import UserItemSets
from recsys.training.ranking import ranking_metrics, top_k_from_scores


def sets(pairs, num_users, num_items):
    users = np.array([u for u, _ in pairs], dtype=np.int64)
    items = np.array([i for _, i in pairs], dtype=np.int64)
    return UserItemSets.from_pairs(users, items, num_users, num_items)


def test_hand_computed_metrics():
    # User 0 ranks [3, 1, 4, 0]; relevant {1, 0}. User 1: relevant {2}, ranked [2, ...].
    # User 2 has no relevant item and is skipped.
    top = torch.tensor([[3, 1, 4, 0], [2, 0, 1, 3], [0, 1, 2, 3]])
    relevant = sets([(0, 1), (0, 0), (1, 2)], num_users=3, num_items=5)
    m = ranking_metrics(top, np.array([0, 1, 2]), relevant, ks=[1, 2, 4])
    assert m["ranked_users"] == 2
    assert m["precision@1"] == pytest.approx((0 + 1) / 2)
    assert m["recall@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["recall@4"] == pytest.approx(1.0)
    assert m["hit_rate@1"] == pytest.approx(0.5)
    assert m["mrr@4"] == pytest.approx((1 / 2 + 1) / 2)
    # NDCG@4 of user 0: hits at ranks 2 and 4 -> (1/log2(3) + 1/log2(5)) / (1 + 1/log2(3)).
    ndcg0 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert m["ndcg@4"] == pytest.approx((ndcg0 + 1.0) / 2)
    assert m["precision@4"] == pytest.approx((2 / 4 + 1 / 4) / 2)


def test_top_k_excludes_training_items_and_matches_dense_ranking():
    torch.manual_seed(0)
    users, items = torch.randn(7, 4), torch.randn(12, 4)
    exclude = sets([(0, 3), (0, 5), (4, 0), (6, 11)], 7, 12)
    top = top_k_from_scores(lambda start, stop: users[start:stop] @ items.T, np.arange(7), 5, exclude, 3, 12)
    dense = users @ items.T
    dense[0, [3, 5]] = float("-inf")
    dense[4, 0] = float("-inf")
    dense[6, 11] = float("-inf")
    assert torch.equal(top, dense.topk(5, dim=1).indices)
    assert 3 not in top[0] and 5 not in top[0]


def test_excluded_items_fill_the_top_k_last_where_too_few_others_remain():
    # 4 items scored 0.4, 0.3, 0.2, 0.1; the user's training items are 0 and 2: k = 4 ranks 1, 3, then the two
    # excluded ones, which the metrics count as misses (a held-out item is never a training one).
    scores = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    top = top_k_from_scores(lambda start, stop: scores[start:stop], np.array([0]), 4, sets([(0, 0), (0, 2)], 1, 4),
                            1, 4)
    assert top[0, :2].tolist() == [1, 3] and sorted(top[0, 2:].tolist()) == [0, 2]
    metrics = ranking_metrics(top, np.array([0]), sets([(0, 3)], 1, 4), ks=[2, 4])
    assert metrics["recall@2"] == 1.0 and metrics["precision@4"] == 0.25 and metrics["mrr@4"] == 0.5


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.sampled_from([1, 3, 10]))
def test_metrics_equal_torchmetrics_retrieval(seed: int, k: int):
    rng = np.random.default_rng(seed)
    num_users, num_items = 9, 15
    # Positive scores: torchmetrics' precision counts only items scored > 0 as retrieved.
    scores = torch.from_numpy(rng.random((num_users, num_items))).float() + 0.1
    target = torch.from_numpy(rng.random((num_users, num_items)) < 0.15)
    target[0] = False  # a user with no relevant item
    pairs = [(u, i) for u, i in zip(*np.nonzero(target.numpy()), strict=True)]
    relevant = sets(pairs, num_users, num_items)
    top = scores.topk(num_items, dim=1).indices
    ours = ranking_metrics(top, np.arange(num_users), relevant, ks=[k])
    indexes = torch.arange(num_users)[:, None].expand(-1, num_items).reshape(-1)
    reference = {
        "precision": RetrievalPrecision(top_k=k, empty_target_action="skip"),
        "recall": RetrievalRecall(top_k=k, empty_target_action="skip"),
        "ndcg": RetrievalNormalizedDCG(top_k=k, empty_target_action="skip"),
        "hit_rate": RetrievalHitRate(top_k=k, empty_target_action="skip"),
        "mrr": RetrievalMRR(top_k=k, empty_target_action="skip"),
    }
    for name, metric in reference.items():
        expected = float(metric(scores.reshape(-1), target.reshape(-1), indexes=indexes))
        assert ours[f"{name}@{k}"] == pytest.approx(expected, abs=1e-5), name


def test_k_beyond_a_small_catalog_counts_missing_positions_as_misses():
    top = torch.tensor([[1, 0]])  # a two-item catalog
    relevant = sets([(0, 0)], num_users=1, num_items=2)
    m = ranking_metrics(top, np.array([0]), relevant, ks=[2, 5])
    assert m["precision@5"] == pytest.approx(1 / 5) and m["recall@5"] == pytest.approx(1.0)
    assert m["ndcg@5"] == pytest.approx(1 / math.log2(3)) and m["mrr@5"] == pytest.approx(0.5)
