import numpy as np
import pytest

from recsys.data.negatives import UserItemSets, sample_negatives


def test_user_item_sets_membership():
    sets = UserItemSets.from_pairs(np.array([0, 0, 2]), np.array([1, 3, 0]), num_users=3, num_items=4)
    assert sets.contains(np.array([0, 0, 1, 2, 2]), np.array([1, 2, 1, 0, 3])).tolist() == [
        True, False, False, True, False,
    ]
    assert sets.items_of(0).tolist() == [1, 3] and sets.items_of(1).tolist() == []
    assert sets.counts().tolist() == [2, 0, 1]
    assert sets.rows(np.array([2, 0, 1])).tolist() == [
        [True, False, False, False], [False, True, False, True], [False, False, False, False],
    ]


def test_negatives_are_never_known_items_nor_the_positive():
    rng = np.random.default_rng(0)
    num_users, num_items = 50, 30
    users = rng.integers(0, num_users, 600)
    items = rng.integers(0, num_items, 600)
    known = UserItemSets.from_pairs(users, items, num_users, num_items)
    positives = rng.integers(0, num_items, 600)  # some held-out positives are not known
    negatives = sample_negatives(users, positives, 8, known, np.random.default_rng(1))
    assert negatives.shape == (600, 8)
    assert not known.contains(users[:, None], negatives).any()
    assert not (negatives == positives[:, None]).any()
    # Uniform over what is allowed: every allowed item of a user turns up.
    user = 0
    allowed = set(range(num_items)) - set(known.items_of(user).tolist())
    many = sample_negatives(np.full(2000, user), np.full(2000, -1), 5, known, np.random.default_rng(2))
    assert set(many.ravel().tolist()) == allowed


def test_user_with_every_item_is_a_clear_error():
    known = UserItemSets.from_pairs(np.zeros(3), np.arange(3), num_users=1, num_items=3)
    with pytest.raises(ValueError, match="every item"):
        sample_negatives(np.array([0]), np.array([0]), 1, known, np.random.default_rng(0))


def test_the_gram_of_the_sets_is_that_of_their_dense_matrix():
    rng = np.random.default_rng(0)
    sets = UserItemSets.from_pairs(rng.integers(0, 50, 400), rng.integers(0, 30, 400), num_users=60, num_items=30)
    dense = sets.rows(np.arange(60)).astype(np.float64)
    gram = sets.gram()
    assert gram.dtype == np.float64 and np.array_equal(gram, dense.T @ dense)
    assert gram[np.diag_indices(30)] == pytest.approx(np.bincount(sets.keys % 30, minlength=30))


def test_rows_and_pairs_of_equal_a_membership_test_of_every_item():
    rng = np.random.default_rng(1)
    sets = UserItemSets.from_pairs(rng.integers(0, 40, 300), rng.integers(0, 25, 300), num_users=50, num_items=25)
    for users in (rng.integers(0, 50, 70), np.array([49, 3, 3, 0]), np.array([], dtype=np.int64)):
        brute = sets.contains(users[:, None], np.arange(25)[None, :])
        assert np.array_equal(sets.rows(users), brute)
        where, items = sets.pairs_of(users)
        assert sorted(zip(where.tolist(), items.tolist(), strict=True)) == sorted(zip(*np.nonzero(brute), strict=True))
    assert not sets.rows(np.array([45])).any()  # a user with no items (ids 40..49 hold none)
