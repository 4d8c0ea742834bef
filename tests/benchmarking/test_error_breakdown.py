"""Where the errors lie: the two tables on hand-computed cases, and on a trained checkpoint, where
their ``all`` rows must equal the checkpoint's own test RMSE and recall@10."""

import json
import math

import numpy as np
import pytest

from recsys.benchmarking.error_breakdown import (
    popularity_bin_labels,
    rating_error_by_stars,
    recall_by_popularity,
)
from recsys.training.run import evaluate
from tests.training.test_learning_curves import train_tiny
from tests.training.test_ranking import sets


def test_rating_error_by_stars_by_hand():
    ratings = np.array([5, 5, 4, 1])
    table = rating_error_by_stars(ratings, {"m": np.array([4.5, 5.0, 4.0, 3.0]), "flat": np.full(4, 4.0)})
    rows = table.set_index("stars")
    assert list(rows.index) == ["1", "4", "5", "all"]
    assert rows["pairs"].tolist() == [1, 1, 2, 4]
    assert rows["share of pairs"].tolist() == pytest.approx([0.25, 0.25, 0.5, 1.0])
    # m's squared errors: 0.25, 0, 0, 4 (sum 4.25); flat's: 1, 1, 0, 9 (sum 11).
    assert rows.loc["5", "m: mean predicted"] == pytest.approx(4.75)
    assert rows.loc["5", "m: RMSE"] == pytest.approx(math.sqrt(0.125))
    assert rows.loc["1", "m: share of squared error"] == pytest.approx(4 / 4.25)
    assert rows.loc["all", "m: RMSE"] == pytest.approx(math.sqrt(4.25 / 4))
    assert rows.loc["1", "flat: share of squared error"] == pytest.approx(9 / 11)
    assert rows.loc["5", "flat: RMSE"] == pytest.approx(1.0)
    assert rows.loc["all", "flat: mean predicted"] == pytest.approx(4.0)
    levels = rows.drop(index="all")
    assert levels["m: share of squared error"].sum() == pytest.approx(1.0)


def test_recall_by_popularity_by_hand():
    # Training interactions of items 0..5; the users' held-out items and their mean popularity:
    # user 0: {0, 1} -> (2 + 4) / 2 = 3, bin (0, 5]; user 1: {2} -> 30, bin > 20; user 2: {3, 4} -> (8 + 12) / 2
    # = 10, bin (5, 10] (right-closed); user 3: none, skipped.
    item_counts = np.array([2, 4, 30, 8, 12, 50])
    relevant = sets([(0, 0), (0, 1), (1, 2), (2, 3), (2, 4)], 4, 6)
    users = np.arange(4)
    top = {"a": np.array([[0, 5], [5, 4], [3, 4], [0, 1]]), "b": np.array([[5, 4], [2, 0], [4, 0], [5, 2]])}
    table = recall_by_popularity(users, relevant, item_counts, top, k=2).set_index(
        "held-out items' training interactions")
    assert list(table.index) == ["(0, 5]", "(5, 10]", "(10, 20]", "> 20", "all"]
    assert table["users"].tolist() == [1, 1, 0, 1, 3]
    assert table["a: recall@2"].tolist()[:2] == [0.5, 1.0] and math.isnan(table.loc["(10, 20]", "a: recall@2"])
    assert table.loc["> 20", "a: recall@2"] == 0.0 and table.loc["> 20", "b: recall@2"] == 1.0
    assert table.loc["(5, 10]", "b: recall@2"] == 0.5
    # The row "all": a's recalls 0.5, 0, 1 and b's 0, 1, 0.5 over the three users with a held-out item.
    assert table.loc["all", "a: recall@2"] == pytest.approx(0.5)
    assert table.loc["all", "b: recall@2"] == pytest.approx(0.5)


def test_users_whose_held_out_items_are_all_new_have_a_row_of_their_own():
    # Items 0 and 1 have no training interaction. User 0 holds out {0} -> 0; user 1 {1, 2} -> (0 + 4) / 2 = 2,
    # bin (0, 5]; user 2 {3} -> 30. They were counted in "(0, 5]", which does not hold 0.
    item_counts = np.array([0, 0, 4, 30])
    relevant = sets([(0, 0), (1, 1), (1, 2), (2, 3)], 3, 4)
    top = {"a": np.array([[0, 3], [2, 3], [3, 2]])}
    table = recall_by_popularity(np.arange(3), relevant, item_counts, top, k=2).set_index(
        "held-out items' training interactions")
    assert list(table.index) == ["0 (new items only)", "(0, 5]", "(5, 10]", "(10, 20]", "> 20", "all"]
    assert table["users"].tolist() == [1, 1, 0, 0, 1, 3]
    assert table["a: recall@2"].tolist()[:2] == [1.0, 0.5] and table.loc["all", "a: recall@2"] == pytest.approx(2.5 / 3)


def test_bin_labels():
    assert popularity_bin_labels((0, 5, 10, 20, math.inf)) == ["(0, 5]", "(5, 10]", "(10, 20]", "> 20"]


@pytest.mark.parametrize("fusion", ["0", "0.5"])
def test_the_breakdown_of_a_checkpoint_adds_up_to_its_test_metrics(tmp_path, monkeypatch, fusion):
    run = train_tiny(tmp_path, monkeypatch, "logger=none", f"model.module.ease_fusion={fusion}")
    (best,) = (run / "checkpoints").glob("epoch*.ckpt")
    metrics = evaluate(best, "test", output_dir=tmp_path / "eval", breakdown=True)
    written = (tmp_path / "eval" / "breakdown.md").read_text()
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test/rmse"] == metrics["test/rmse"]
    rating_rows = [line.split("|")[1:-1] for line in written.splitlines() if line.startswith("| all |")]
    rating, recall = rating_rows
    header = next(line for line in written.splitlines() if line.startswith("| stars |")).split("|")[1:-1]
    assert float(rating[header.index(" model: RMSE ")]) == pytest.approx(metrics["test/rmse"], abs=1e-4)
    recall_header = next(line for line in written.splitlines() if line.startswith("| held-out")).split("|")[1:-1]
    assert float(recall[recall_header.index(" model: recall@10 ")]) == pytest.approx(metrics["test/recall@10"],
                                                                                      abs=1e-4)
    assert int(recall[recall_header.index(" users ")]) == metrics["test/ranked_users"]
    assert " EASE (λ = 200): recall@10 " in recall_header and " biases: RMSE " in header


def test_breakdown_must_be_a_flag(tmp_path):
    with pytest.raises(ValueError, match=r"^breakdown='yes' is not allowed: give true or false"):
        evaluate(tmp_path / "missing.ckpt", "test", breakdown="yes")  # type: ignore[arg-type]
