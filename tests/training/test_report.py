"""The console summary of a run's metrics, and its learning curves."""

import numpy as np
import pandas as pd

from recsys.training.report import learning_curve_series, metrics_table, plot_learning_curves


def test_metrics_table_puts_splits_side_by_side_and_ks_in_rows():
    metrics = {
        "val/loss": 2.5, "val/rmse": 0.91234, "val/recall@5": 0.1, "val/recall@10": 0.2, "val/ndcg@10": 0.15,
        "val/ranked_users": 168.0, "test/rmse": 0.8958, "test/recall@10": 0.25, "test/recall@5": 0.125,
        "rating_checkpoint/test/rmse": 0.89, "train_minutes": 0.54,
    }
    lines = metrics_table(metrics).splitlines()
    assert lines[:3] == [
        "split    loss    rmse  ranked_users",
        "val    2.5000  0.9123           168",
        "test           0.8958",
    ]
    assert lines[3] == ""
    # K ascending within a split, val before test; a value absent for a (split, K) is left blank.
    assert lines[4:9] == [
        "split   K  recall    ndcg",
        "val     5  0.1000",
        "val    10  0.2000  0.1500",
        "test    5  0.1250",
        "test   10  0.2500",
    ]
    assert lines[9:] == ["", "rating_checkpoint/test/rmse  0.8900", "train_minutes                0.5400"]


def test_metrics_table_of_one_split_and_of_nothing():
    assert metrics_table({"test/rmse": 1.25, "test/mae": 0.5}).splitlines() == [
        "split    rmse     mae", "test   1.2500  0.5000"]
    assert metrics_table({}) == ""


def test_next_steps_name_the_checkpoints_and_the_commands_for_the_best():
    from recsys.training.run import next_steps

    best, rating = "/r/run1/checkpoints/epoch03.ckpt", "/r/run1/checkpoints/rating-epoch02.ckpt"
    assert next_steps(best, "val/recall@10", rating).splitlines() == [
        f"Best checkpoint (by val/recall@10): {best}",
        f"Rating checkpoint (lowest val/rmse): {rating}",
        f"Evaluate it: python scripts/evaluate.py ckpt={best} split=test",
        f"Export it for serving: python scripts/export.py ckpt={best} out=exports/run1",
    ]
    assert "Rating checkpoint" not in next_steps(best, "val/rmse", None)
    assert next_steps(None, "val/recall@10", rating) == ""  # no checkpoint kept
    assert next_steps(best, "val/rmse", None, exportable=False).splitlines()[-1] == (
        f"Evaluate it: python scripts/evaluate.py ckpt={best} split=test")  # a baseline: nothing to serve


def _logged(rows: list[dict]) -> pd.DataFrame:
    columns = ["epoch", "step", "train/loss", "train/epoch_loss", "val/rmse", "val/recall@10"]
    return pd.DataFrame([{c: row.get(c, np.nan) for c in columns} for row in rows])


def test_learning_curves_of_a_run_shorter_than_the_logging_interval_show_the_epoch_means():
    # 9 steps an epoch, logged every 10: one step's loss in two epochs, and each epoch's mean.
    frame = _logged([
        {"epoch": 0, "step": 8, "train/epoch_loss": 3.0},
        {"epoch": 0, "step": 8, "val/rmse": 1.2, "val/recall@10": 0.10},
        {"epoch": 1, "step": 9, "train/loss": 2.5},
        {"epoch": 1, "step": 17, "train/epoch_loss": 2.0},
        {"epoch": 1, "step": 17, "val/rmse": 1.1, "val/recall@10": 0.12},
    ])
    panels = {title: (x, series) for title, x, series in learning_curve_series(frame)}
    x, loss = panels["training loss"]
    assert x == "step"
    assert loss["train/loss"].values.tolist() == [[9, 2.5]]
    assert loss["train/epoch_loss"].values.tolist() == [[8, 3.0], [17, 2.0]]
    assert panels["validation RMSE"][1]["val/rmse"].values.tolist() == [[0, 1.2], [1, 1.1]]
    assert panels["validation recall@10"][1]["val/recall@10"]["val/recall@10"].tolist() == [0.10, 0.12]


def test_learning_curves_leave_out_what_was_not_logged(tmp_path):
    frame = _logged([{"epoch": 0, "step": 3, "train/loss": 1.5}]).drop(columns=["train/epoch_loss"])
    panels = learning_curve_series(frame)
    assert [(title, list(series)) for title, _, series in panels] == [("training loss", ["train/loss"])]
    assert plot_learning_curves(frame, tmp_path / "curves.png").stat().st_size > 5_000
    assert plot_learning_curves(pd.DataFrame(), tmp_path / "none.png") is None  # nothing recorded: no file
    assert not (tmp_path / "none.png").exists()
