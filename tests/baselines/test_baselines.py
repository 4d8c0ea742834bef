"""Each baseline on a tiny hand-made dataset, with hand-checkable results."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.baselines.bias import Biases
from recsys.baselines.ease import EASE
from recsys.baselines.popularity import Popularity
from recsys.baselines.zero_shot import ZeroShot
from recsys.data.negatives import UserItemSets
from recsys.data.prepared import SplitPairs
from recsys.data.texts import build_user_histories


def fake_datamodule(train: list[tuple[int, int, float]], num_users: int, num_items: int, tokenizer=None,
                    tmp_path=None, review_texts=None, item_documents=None):
    users = np.array([u for u, _, _ in train])
    items = np.array([i for _, i, _ in train])
    ratings = np.array([r for _, _, r in train], dtype=np.float32)
    reviews = pd.DataFrame({"user_id": [f"U{u}" for u in users], "item_id": [f"I{i}" for i in items],
                            "timestamp": np.arange(len(train))})
    data = SimpleNamespace(
        num_users=num_users, num_items=num_items,
        pairs={"train": SplitPairs(users, items, ratings, np.arange(len(train)))},
        histories=build_user_histories(reviews, pd.Index([f"U{u}" for u in range(num_users)])),
        review_texts=review_texts or [""] * len(train),
        train_items=UserItemSets.from_pairs(users, items, num_users, num_items),
    )
    dm = SimpleNamespace(data=data, tokenizer=tokenizer, cache_dir=tmp_path,
                         item_train_counts=lambda: np.bincount(items, minlength=num_items))
    if item_documents is not None:
        from recsys.data.tokenization import TokenCache

        dm.item_tokens = TokenCache(tokenizer, tmp_path / "tokens").tokenize(item_documents, 64)
    return dm


def test_popularity_orders_items_by_training_count():
    dm = fake_datamodule([(0, 2, 5), (1, 2, 4), (2, 2, 3), (0, 0, 5), (1, 0, 2), (2, 1, 1)], 3, 4)
    model = Popularity()
    model.fit(dm)
    order = model.user_scores(np.array([0, 1])).argsort(dim=1, descending=True)
    assert order.tolist() == [[2, 0, 1, 3], [2, 0, 1, 3]]
    assert model.predict_ratings(np.array([0]), np.array([0])) is None


def test_bias_values_by_hand():
    # mean 4; one ALS round with reg 1 from zero item biases:
    # b_u0 = ((5-4) + (3-4)) / (2+1) = 0;   b_u1 = (4-4) / (1+1) = 0
    # b_i0 = ((5-4-0) + (4-4-0)) / (2+1) = 1/3;   b_i1 = (3-4-0) / (1+1) = -1/2
    dm = fake_datamodule([(0, 0, 5), (0, 1, 3), (1, 0, 4)], 2, 2)
    model = Biases(reg=1.0, iterations=1)
    model.fit(dm)
    assert model.mean == pytest.approx(4.0)
    assert model.user_bias == pytest.approx([0.0, 0.0])
    assert model.item_bias == pytest.approx([1 / 3, -1 / 2])
    assert model.predict_ratings(np.array([0, 1]), np.array([1, 0])) == pytest.approx([3.5, 4 + 1 / 3])
    assert model.user_scores(np.array([0])).argmax().item() == 0


def test_ease_closed_form_by_hand():
    # Two users: X = [[1, 1, 0], [0, 1, 1]], l2 = 1. G = X^T X + I; B = I - P / diag(P), diag 0.
    dm = fake_datamodule([(0, 0, 5), (0, 1, 5), (1, 1, 5), (1, 2, 5)], 2, 3)
    model = EASE(l2=1.0)
    model.fit(dm)
    x = np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float64)
    inverse = np.linalg.inv(x.T @ x + np.eye(3))
    expected = -inverse / np.diag(inverse)
    np.fill_diagonal(expected, 0.0)
    assert model.weights == pytest.approx(expected)
    # User 0 has items 0 and 1: item 2 co-occurs with item 1, so it scores above 0.
    assert float(model.user_scores(np.array([0]))[0, 2]) > 0
    with pytest.raises(ValueError, match="l2"):
        EASE(l2=0)


def test_zero_shot_ranks_three_items_by_review_similarity(tokenizer, tmp_path):
    documents = ["Acoustic guitar strings, phosphor bronze, warm tone", "Maple drum sticks, 5A, wood tip",
                 "88-key digital piano keyboard with weighted keys"]
    reviews = ["These strings sound warm and bright on my acoustic guitar", "Great sticks for my drum kit"]
    dm = fake_datamodule([(0, 0, 5), (1, 1, 5)], 2, 3, tokenizer, tmp_path, reviews, documents)
    model = ZeroShot(max_tokens=64)
    model.fit(dm)
    scores = model.user_scores(np.array([0, 1]))
    assert scores[0].argmax().item() == 0 and scores[1].argmax().item() == 1
    assert torch.all(scores <= 1.0 + 1e-5)
