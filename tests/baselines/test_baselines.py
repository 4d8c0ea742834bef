"""Each baseline on a tiny hand-made dataset, with hand-checkable results."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.baselines.bias import Biases
from recsys.baselines.ease import EASE, ease_weights, text_gram
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
    dm = SimpleNamespace(data=data, prepared=data, tokenizer=tokenizer, cache_dir=tmp_path,
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


def test_side_gram_is_ease_on_side_rows_stacked_under_the_interactions():
    rng = np.random.default_rng(0)
    interactions = (rng.random((12, 5)) < 0.4).astype(np.float64)
    side = rng.normal(size=(3, 5))  # three side-information rows over the 5 items
    rows = np.vstack([interactions, side])
    stacked = ease_weights(rows.T @ rows, l2=2.0)
    gram = interactions.T @ interactions
    assert ease_weights(gram, 2.0, side.T @ side) == pytest.approx(stacked, abs=1e-10)
    assert not np.allclose(ease_weights(gram, 2.0), stacked)


def test_text_gram_is_the_scaled_cosine_of_centred_text():
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 3.0]])
    gram = text_gram(text, weight=2.0)
    centred = torch.nn.functional.normalize(text - text.mean(0), dim=-1).double()
    assert gram == pytest.approx(4.0 * (centred @ centred.T).numpy(), abs=1e-6)
    assert gram[0, 1] == pytest.approx(4.0) and np.diag(gram) == pytest.approx(np.full(4, 4.0))


def test_text_ease_links_items_that_never_co_occur():
    # Items 0 and 1 co-occur; item 2 never meets item 0 in training but has item 0's text.
    dm = fake_datamodule([(0, 0, 5), (0, 1, 5), (1, 0, 4), (1, 1, 4), (2, 2, 5), (3, 3, 5), (4, 0, 5)], 5, 4)
    text = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    plain, with_text = EASE(l2=1.0), EASE(l2=1.0, text_weight=1.0, encoder=object())
    with_text.item_text = lambda datamodule: text  # the closed form is under test, not the encoder
    plain.fit(dm)
    with_text.fit(dm)
    user_4 = np.array([4])  # has item 0 only
    assert float(plain.user_scores(user_4)[0, 2]) == 0.0
    scores = with_text.user_scores(user_4)[0]
    assert scores[2] > 0.1 and scores[2] > scores[3]  # reached through its text, above unrelated text
    assert with_text.weights == pytest.approx(ease_weights(dm.data.train_items.gram(), 1.0, text_gram(text, 1.0)))
    with pytest.raises(ValueError, match="text_weight"):
        EASE(text_weight=-1.0)


def test_text_ease_reads_the_item_documents_with_the_pretrained_encoder(tokenizer, tmp_path):
    documents = ["Acoustic guitar strings, phosphor bronze, warm tone", "Maple drum sticks, 5A, wood tip",
                 "Phosphor bronze strings for acoustic guitars", "88-key digital piano keyboard with weighted keys"]
    # Items 0 and 1 are reviewed together; item 2 (the other strings) never with item 0.
    train = [(0, 0, 5), (0, 1, 5), (1, 0, 4), (1, 1, 4), (2, 2, 5), (2, 3, 5), (3, 3, 4), (4, 0, 5)]
    dm = fake_datamodule(train, 5, 4, tokenizer, tmp_path, item_documents=documents)
    model = EASE(l2=1.0, text_weight=1.5, embedding_cache_dir=tmp_path / "embeddings")
    model.fit(dm)
    scores = model.user_scores(np.array([4]))[0]  # a user with the first strings only
    assert scores[2] > scores[3]  # the other strings rank above the piano, by their text alone
    assert list((tmp_path / "embeddings").glob("*.safetensors"))  # cached for the next run


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


def text_ridge(train, num_users, num_items, text, embeddings=None, **kwargs):
    from recsys.baselines.text_ridge import TextRidge

    model = TextRidge(text=text, encoder=object() if text else None, **kwargs)
    if text:  # the regression is under test: review embeddings are given, not encoded
        model._review_embeddings = lambda dm: embeddings
    model.fit(fake_datamodule(train, num_users, num_items))
    return model


TRAIN = [(0, 0, 5), (0, 1, 3), (1, 0, 4), (1, 2, 2), (2, 1, 5), (2, 2, 5)]


def test_text_ridge_features_leave_the_pair_out_by_hand():
    model = text_ridge(TRAIN, 3, 3, text=False, shrinkage=1.0)
    assert model.mean == pytest.approx(4.0)
    # Training pair (user 0, item 0, 5 stars): user 0's other review is 3 stars (deviation -1, n=1),
    # item 0's other review is 4 stars (deviation 0, n=1).
    own = model.features(np.array([0]), np.array([0]), own_review=np.array([0]), own_rating=np.array([5.0]))
    assert own.user[0] == pytest.approx([-1 / 2, np.log(2)]) and own.item[0] == pytest.approx([0.0, np.log(2)])
    # A held-out pair sees every training review: user 0 (5, 3 stars), item 2 (2, 5 stars).
    held_out = model.features(np.array([0]), np.array([2]))
    assert held_out.user[0] == pytest.approx([0.0, np.log(3)])
    assert held_out.item[0] == pytest.approx([-1 / 3, np.log(3)])
    with pytest.raises(ValueError, match="l2"):
        text_ridge(TRAIN, 3, 3, text=False, l2=-1.0)


def test_text_ridge_never_reads_the_pairs_own_review():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(len(TRAIN), 8))
    model = text_ridge(TRAIN, 3, 3, text=True, embeddings=embeddings)
    users, items = np.array([0, 0]), np.array([0, 1])  # training pairs 0 and 1 (both user 0)
    before = model.features(users, items, own_review=np.array([0, 1]), own_rating=np.array([5.0, 3.0]))
    changed = embeddings.copy()
    changed[0] += 100.0  # pair 0's own review
    after = text_ridge(TRAIN, 3, 3, text=True, embeddings=changed).features(
        users, items, own_review=np.array([0, 1]), own_rating=np.array([5.0, 3.0]))
    assert after.user[0] == pytest.approx(before.user[0]) and after.item[0] == pytest.approx(before.item[0])
    # ...while pair 1 of the same user has that review in its features.
    assert not np.allclose(after.user[1], before.user[1])


@pytest.mark.parametrize("text", [False, True])
def test_text_ridge_scores_every_item_as_it_predicts_each_pair(text):
    rng = np.random.default_rng(1)
    model = text_ridge(TRAIN, 3, 3, text=text, embeddings=rng.normal(size=(len(TRAIN), 8)), l2=0.1)
    users, items = np.repeat(np.arange(3), 3), np.tile(np.arange(3), 3)
    unclipped = model.features(users, items).matrix() @ model.weights[:-1] + model.weights[-1]
    assert model.user_scores(np.arange(3)).numpy().ravel() == pytest.approx(unclipped, abs=1e-5)
    assert model.predict_ratings(users, items) == pytest.approx(np.clip(unclipped, 1, 5))
    # The fit is the ridge solution: the gradient of the penalised squared error is zero.
    x = np.hstack([model.features(np.array([u for u, _, _ in TRAIN]), np.array([i for _, i, _ in TRAIN]),
                                  own_review=np.arange(6), own_rating=np.array([r for _, _, r in TRAIN],
                                                                               dtype=float)).matrix(),
                   np.ones((6, 1))])
    residual = x @ model.weights - np.array([r for _, _, r in TRAIN])
    gradient = x.T @ residual + 0.1 * np.append(model.weights[:-1], 0.0)
    assert np.abs(gradient).max() < 1e-8


def test_ease_scores_a_large_catalog_by_a_sparse_product_equal_to_the_dense_one(monkeypatch):
    rng = np.random.default_rng(0)
    train = [(int(u), int(i), 5) for u, i in zip(rng.integers(0, 30, 200), rng.integers(0, 40, 200), strict=True)]
    dm = fake_datamodule(list({(u, i): (u, i, r) for u, i, r in train}.values()), 30, 40)
    model = EASE(l2=5.0)
    model.fit(dm)
    users = np.arange(30)
    dense = model.user_scores(users)
    by_hand = dm.data.train_items.rows(users).astype(np.float64) @ model.weights
    assert torch.equal(dense, torch.from_numpy(by_hand).float()) and dense.abs().max() > 0.01
    monkeypatch.setattr("recsys.training.ranking.SPARSE_EASE_ITEMS", 40)  # this catalog counts as large
    sparse_products = []
    sparse_mm = torch.sparse.mm
    monkeypatch.setattr(torch.sparse, "mm", lambda a, b: sparse_products.append(a.shape) or sparse_mm(a, b))
    sparse_scores = model.user_scores(users)
    assert sparse_products == [(30, 40)]
    assert torch.allclose(sparse_scores, dense, atol=1e-6)
