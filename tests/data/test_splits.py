import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.data.errors import SplitMismatchError
from recsys.data.splits import (
    SplitSpec,
    cold_start_pairs,
    describe_cold_start,
    interactions_fingerprint,
    load_or_create_split,
    random_split,
    temporal_split,
)


def table(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(rating=5.0)


def grid(num_users: int = 10, per_user: int = 10) -> pd.DataFrame:
    return table([(f"U{u}", f"I{i}", 1000 * u + i) for u in range(num_users) for i in range(per_user)])


def test_random_split_is_exact_disjoint_and_complete():
    frame = grid()
    split = random_split(frame, seed=0)
    assert len(split) == 100
    assert {name: int((split == name).sum()) for name in ("train", "val", "test")} == {
        "train": 80, "val": 10, "test": 10,
    }


def test_random_split_is_deterministic_per_seed():
    frame = grid()
    assert (random_split(frame, seed=3) == random_split(frame, seed=3)).all()
    assert not (random_split(frame, seed=3) == random_split(frame, seed=4)).all()


def test_random_split_follows_the_papers_protocol_and_is_stable_across_machines():
    frame = grid(4, 5)
    split = random_split(frame, seed=0)
    # The documented rule: permute rows with PCG64, first 80% train, next 10% val, rest test.
    order = np.random.default_rng(0).permutation(20)
    expected = np.empty(20, dtype=object)
    expected[order[:16]], expected[order[16:18]], expected[order[18:]] = "train", "val", "test"
    assert split.tolist() == expected.tolist()
    # Pinned on 2026-11-24: PCG64's permutation is platform independent; this catches a change
    # of NumPy's stream between versions, which would silently change every split.
    assert order.tolist() == [4, 19, 6, 2, 13, 16, 3, 11, 10, 8, 0, 12, 7, 5, 18, 17, 14, 9, 1, 15]
    assert "".join({"train": ".", "val": "v", "test": "T"}[n] for n in split) == ".T.......v....vT...."


def test_temporal_split_puts_each_users_latest_last():
    frame = table([
        ("A", "a1", 10), ("A", "a2", 30), ("A", "a3", 20), ("A", "a4", 40),
        ("B", "b1", 5), ("B", "b2", 5), ("B", "b0", 5),   # a tie in time: broken by item id
        ("C", "c1", 7), ("C", "c2", 9),                      # two interactions: no validation
        ("D", "d1", 1),                                      # one interaction: train only
    ])
    split = dict(zip(frame["item_id"], temporal_split(frame), strict=True))
    assert split == {
        "a1": "train", "a3": "train", "a2": "val", "a4": "test",
        "b0": "train", "b1": "val", "b2": "test",
        "c1": "train", "c2": "test",
        "d1": "train",
    }


def test_split_is_saved_with_seed_and_hash_and_reused(tmp_path: Path):
    frame = grid()
    spec = SplitSpec(strategy="random", seed=7)
    first = load_or_create_split(frame, spec, tmp_path)
    manifest = json.loads((tmp_path / "random-v2-seed7-0.8-0.1-0.1.json").read_text())
    assert manifest["spec"]["seed"] == 7
    assert manifest["data_fingerprint"] == interactions_fingerprint(frame)
    assert manifest["counts"] == {"test": 10, "train": 80, "val": 10}
    # Reuse: overwrite the saved table with a valid but different assignment -> detected.
    second = load_or_create_split(frame, spec, tmp_path)
    assert first.equals(second)
    saved = pd.read_parquet(tmp_path / "random-v2-seed7-0.8-0.1-0.1.parquet")
    saved["split"] = saved["split"].iloc[::-1].to_numpy()
    saved.to_parquet(tmp_path / "random-v2-seed7-0.8-0.1-0.1.parquet", index=False)
    with pytest.raises(SplitMismatchError, match="edited or corrupted"):
        load_or_create_split(frame, spec, tmp_path)


def test_saved_split_for_other_data_is_refused(tmp_path: Path):
    load_or_create_split(grid(), SplitSpec(seed=1), tmp_path)
    changed = grid()
    changed.loc[0, "rating"] = 1.0
    with pytest.raises(SplitMismatchError, match="Delete it"):
        load_or_create_split(changed, SplitSpec(seed=1), tmp_path)


def test_bad_split_settings_say_what_is_allowed():
    with pytest.raises(ValueError, match="random, temporal, kfold"):
        SplitSpec(strategy="leave-one-out")
    with pytest.raises(ValueError, match="0 <= fold < folds"):
        SplitSpec(strategy="kfold", folds=5, fold=5)
    with pytest.raises(ValueError, match="sum to 1"):
        SplitSpec(fractions=(0.8, 0.1, 0.2))
    for name, value in (("seed", "abc"), ("folds", 2.5), ("fold", True)):  # was a TypeError deep in numpy
        with pytest.raises(ValueError, match=rf"^data.split.{name}={value!r} is not allowed: give a whole number$"):
            SplitSpec(**{name: value})


def test_fingerprint_follows_content_and_row_order():
    frame = grid()
    assert interactions_fingerprint(frame) == interactions_fingerprint(frame.copy())
    assert interactions_fingerprint(frame) != interactions_fingerprint(frame.iloc[::-1])


def test_kfold_tests_every_row_exactly_once_and_never_trains_on_its_test_fold(tmp_path: Path):
    frame = grid()
    n, folds = len(frame), 4
    splits = [load_or_create_split(frame, SplitSpec(strategy="kfold", seed=3, folds=folds, fold=f), tmp_path)
              for f in range(folds)]
    tested = np.stack([s.to_numpy() == "test" for s in splits])
    assert (tested.sum(axis=0) == 1).all()  # each interaction is a test row in exactly one fold
    assert sorted(tested.sum(axis=1)) == sorted(len(p) for p in np.array_split(np.arange(n), folds))
    for split in splits:
        assert (split == "val").sum() == int(n * 0.1)
        assert set(split) == {"train", "val", "test"}
    # Fold 0's test rows are the first quarter of the seeded permutation.
    order = np.random.default_rng(3).permutation(n)
    assert set(np.flatnonzero(tested[0])) == set(order[: len(np.array_split(order, folds)[0])])
    assert len(list(tmp_path.glob("kfold-v*-seed3-fold*of4-val0.1.json"))) == folds


def test_cold_start_pairs_count_held_out_pairs_whose_user_or_item_has_no_training_review():
    interactions = pd.DataFrame(
        [("a", "x", "train"), ("a", "y", "val"), ("b", "y", "test"), ("c", "x", "test"), ("c", "z", "test"),
         ("d", "z", "val")],
        columns=["user_id", "item_id", "split"],
    )
    counts = cold_start_pairs(interactions)
    # Trained: user a, item x. val: (a, y) new item; (d, z) both new. test: (b, y) both; (c, x) user; (c, z) both.
    assert counts.to_dict("index") == {"val": {"pairs": 2, "new_user": 1, "new_item": 2},
                                       "test": {"pairs": 3, "new_user": 3, "new_item": 2}}
    assert describe_cold_start(counts).startswith(
        "Cold start: held-out pairs whose user has no training review: val 1 of 2 (50.0%) and test 3 of 3 "
        "(100.0%); whose item has none: val 2 of 2 (100.0%) and test 2 of 3 (66.7%). The metrics include them")
    warm = pd.DataFrame([("a", "x", "train"), ("b", "y", "train"), ("a", "y", "val"), ("b", "x", "test")],
                        columns=["user_id", "item_id", "split"])
    assert describe_cold_start(cold_start_pairs(warm)) is None
    assert cold_start_pairs(warm).to_dict("index")["test"] == {"pairs": 1, "new_user": 0, "new_item": 0}
