"""Cross-validation: the fold summary table, and scripts/cross_validate.py end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.benchmarking.cross_validation import fold_overrides, summarize_folds, write_cv_report
from tests.conftest import REPO_ROOT, script_env


def records() -> list[dict]:
    values = [(0.10, 0.90), (0.14, 0.86), (0.12, 0.88)]
    return [{"fold": k, "minutes": 0.5 + k, "peak_mb": 900.0,
             "metrics": {"test/recall@10": r, "test/rmse": e, "val/recall@10": r / 2, "test/recall@7": 0.0,
                         "train_minutes": 0.1, "rating_checkpoint/test/rmse": e - 0.01}}
            for k, (r, e) in enumerate(values)]


def test_summary_has_each_fold_mean_and_sample_std():
    table = summarize_folds(records())
    assert list(table.columns) == ["fold0", "fold1", "fold2", "mean", "std"]
    assert table.loc["test/recall@10", "mean"] == pytest.approx(0.12)
    assert table.loc["test/recall@10", "std"] == pytest.approx(np.std([0.10, 0.14, 0.12], ddof=1))
    assert table.loc["test/rmse", "fold1"] == pytest.approx(0.86)
    assert "test/recall@7" not in table.index and "train_minutes" not in table.index  # not in the summary
    assert list(table.index[:2]) == ["test/recall@10", "test/rmse"]  # test metrics first
    assert list(table.index[2:]) == ["rating_checkpoint/test/rmse", "minutes", "peak_mb", "val/recall@10"]
    assert table.loc["rating_checkpoint/test/rmse", "mean"] == pytest.approx(0.87)


def test_report_writes_markdown_and_csv(tmp_path: Path):
    path = write_cv_report(records(), tmp_path, "python scripts/cross_validate.py cv.folds=3")
    text = path.read_text()
    assert "| test/recall@10 | 0.1200 ± 0.0200 | 0.1000 | 0.1400 | 0.1200 |" in text
    assert "cv.folds=3" in text
    frame = pd.read_csv(tmp_path / "cv_results.csv", index_col="metric")
    assert frame.loc["test/rmse", "mean"] == pytest.approx(0.88)


def test_fold_overrides_select_the_kfold_split():
    assert fold_overrides(5, 2) == ["data.split.strategy=kfold", "data.split.folds=5", "data.split.fold=2"]


def _script(*arguments: str, cache: Path, data_dir: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "cross_validate.py"), *arguments],
                          cwd=REPO_ROOT, env=script_env(cache, data_dir), capture_output=True, text=True,
                          timeout=900)


def test_bad_options_fail_before_training(tmp_path: Path):
    result = _script("cv.fold=3", cache=tmp_path)
    assert result.returncode == 2 and "cv.fold is not a cross-validation option" in result.stderr + result.stdout
    result = _script("cv.folds=3", "model=nope", f"cv.out={tmp_path}", cache=tmp_path)
    assert result.returncode == 2 and "bad override" in result.stderr + result.stdout


def test_a_used_work_folder_is_refused_before_training(tmp_path: Path):
    # An earlier run's checkpoints in a fold folder would be read as this run's.
    (tmp_path / "runs" / "fold1" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "fold1" / "checkpoints" / "epoch06.ckpt").write_bytes(b"old")
    (tmp_path / "runs" / "fold0").mkdir()  # an empty folder is fine
    result = _script("cv.folds=3", "model=ease", f"cv.out={tmp_path}", f"cv.work={tmp_path / 'runs'}",
                     cache=tmp_path)
    output = result.stderr + result.stdout
    assert result.returncode == 2 and "fold1 holds files of an earlier run" in output and "cv.work" in output
    assert not (tmp_path / "runs" / "fold0" / "metrics.json").exists()


@pytest.mark.slow
def test_cross_validate_script_runs_every_fold(tmp_path: Path, real_data_dir: Path):
    out = tmp_path / "cv"
    result = _script("cv.folds=3", "data=magazine", "model=ease", f"cv.out={out}", f"cv.work={out / 'runs'}",
                     cache=tmp_path / "cache", data_dir=real_data_dir)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    folds = [json.loads((out / "runs" / f"fold{k}" / "metrics.json").read_text()) for k in range(3)]
    table = pd.read_csv(out / "cv_results.csv", index_col="metric")
    recalls = [f["test/recall@10"] for f in folds]
    assert table.loc["test/recall@10", "mean"] == pytest.approx(np.mean(recalls))
    assert len(set(recalls)) == 3  # three different test folds
    assert "mean ± std" in (out / "cv_results.md").read_text()
    # Every interaction is tested exactly once over the folds.
    splits = sorted((tmp_path / "cache").rglob("kfold-v*-fold*of3-*.parquet"))
    assert len(splits) == 3
    tested = sum((pd.read_parquet(p)["split"] == "test").astype(int) for p in splits)
    assert (tested == 1).all()


def test_the_cross_validation_driver_does_not_import_torch():
    # It reads fold results by key names; the folds train in processes of their own. Importing a
    # name from the training reports once made it load torch and Lightning (7.5 s against 0.4 s).
    probe = ("import sys, recsys.benchmarking.cross_validation; "
             "print(sorted({'torch', 'pytorch_lightning'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
