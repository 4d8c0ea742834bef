import numpy as np
import pytest
import torch

from recsys.data.negatives import UserItemSets
from recsys.serving.index import IndexConfig, ItemIndex


def sets_of(rows: list) -> UserItemSets:
    users = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)]).astype(np.int64)
    items = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows])
    return UserItemSets.from_pairs(users, items, len(rows), 10_000)


def unit(rows: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_exact_index_equals_torch_matmul_topk():
    items, queries = unit(500, 32, 0), unit(20, 32, 1)
    scores, found = ItemIndex(items).search(queries, 10)
    expected = (torch.from_numpy(queries) @ torch.from_numpy(items).T).topk(10, dim=1)
    assert np.array_equal(found, expected.indices.numpy())
    assert np.allclose(scores, expected.values.numpy(), atol=1e-5)


def test_excluded_items_never_come_back_and_results_stay_in_order():
    items, queries = unit(200, 16, 2), unit(3, 16, 3)
    full_scores, full = ItemIndex(items).search(queries, 200)
    exclude = [full[0, :5], np.array([], dtype=np.int64), full[2, [0, 2, 4]]]
    scores, found = ItemIndex(items).search(queries, 10, sets_of(exclude))
    assert found[0].tolist() == full[0, 5:15].tolist()
    assert found[1].tolist() == full[1, :10].tolist()
    assert found[2].tolist() == [i for i in full[2] if i not in exclude[2]][:10]
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_small_catalog_pads_missing_results():
    scores, found = ItemIndex(unit(4, 8, 4)).search(unit(1, 8, 5), 3, sets_of([np.array([0, 1])]))
    assert sorted(found[0, :2].tolist()) == [2, 3] and found[0, 2] == -1 and scores[0, 2] == -np.inf


@pytest.mark.parametrize("config", [IndexConfig("ivf", nlist=8, nprobe=8), IndexConfig("hnsw", ef_search=256),
                                    IndexConfig("flat_fp16")])
def test_approximate_indexes_find_the_exact_neighbours(config):
    items, queries = unit(2000, 32, 6), unit(50, 32, 7)
    _, exact = ItemIndex(items).search(queries, 10)
    _, approx = ItemIndex(items, config).search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95


def test_unknown_index_kind_says_what_is_allowed():
    with pytest.raises(ValueError, match="flat, ivf, hnsw, flat_fp16"):
        IndexConfig("annoy")
