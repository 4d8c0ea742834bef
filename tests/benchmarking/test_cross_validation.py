"""Cross-validation: the fold summary table, and scripts/cross_validate.py end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.benchmarking import cross_validation
from recsys.benchmarking.cross_validation import fold_overrides, summarize_folds, write_cv_report
from tests.conftest import REPO_ROOT, script_env
from tests.wandb_records import offline_run


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


def test_summary_keeps_the_usual_cutoffs_of_a_baselines_every_k_in_numeric_order():
    # A baseline's evaluation gives every ranking metric at K = 1..50.
    folds = [{"fold": k, "minutes": 0.1, "peak_mb": 500.0,
              "metrics": {f"test/{name}@{cutoff}": cutoff / 100 for name in ("recall", "ndcg", "mrr")
                          for cutoff in range(1, 51)} | {"test/coverage@10": 0.5}} for k in range(2)]
    rows = list(summarize_folds(folds).index)
    assert rows[:12] == ["test/coverage@10", "test/mrr@5", "test/mrr@10", "test/mrr@20", "test/ndcg@5",
                         "test/ndcg@10", "test/ndcg@20", "test/recall@5", "test/recall@10", "test/recall@20",
                         "test/recall@50", "minutes"]


def test_report_writes_markdown_and_csv(tmp_path: Path):
    folds = records()
    for fold, users in zip(folds, (340.0, 342.0, 341.0), strict=True):
        fold["metrics"]["test/ranked_users"] = users
    path = write_cv_report(folds, tmp_path, "python scripts/cross_validate.py cv.folds=3")
    text = path.read_text()
    assert "| test/recall@10 | 0.1200 ± 0.0200 | 0.1000 | 0.1400 | 0.1200 |" in text
    assert "| test/ranked_users | 341.0 ± 1.0 | 340.0 | 342.0 | 341.0 |" in text  # counts: one decimal
    assert "cv.folds=3" in text
    frame = pd.read_csv(tmp_path / "cv_results.csv", index_col="metric")
    assert frame.loc["test/rmse", "mean"] == pytest.approx(0.88)


def test_fold_overrides_select_the_kfold_split():
    assert fold_overrides(5, 2) == ["data.split.strategy=kfold", "data.split.folds=5", "data.split.fold=2"]


class _FakeFolds:
    """Stands in for the fold processes: records how many run at once and with how many threads;
    later folds finish first, so that an order of completion would show in the records."""

    def __init__(self, folds: int, failing: int | None = None) -> None:
        self.folds, self.failing = folds, failing
        self.running = self.most_running = 0
        self.threads: list[int | None] = []
        self.started: list[int] = []
        self.groups: set[str | None] = set()
        self.lock = threading.Lock()

    def __call__(self, overrides: list[str], out: Path, name: str, threads: int | None = None,
                 group: str | None = None) -> dict:
        fold = int(overrides[-1].rsplit("=", 1)[1])
        with self.lock:
            self.groups.add(group)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.threads.append(threads)
            self.started.append(fold)
        time.sleep(0.05 * (self.folds - fold))
        with self.lock:
            self.running -= 1
        if fold == self.failing:
            raise RuntimeError(f"fold {fold} failed: out of memory")
        return {"metrics": {"test/recall@10": fold / 10}, "minutes": 0.1, "peak_mb": 1.0}


def test_parallel_folds_run_side_by_side_with_a_share_of_the_cores(tmp_path: Path, monkeypatch):
    fake = _FakeFolds(5)
    monkeypatch.setattr(cross_validation, "run_training", fake)
    monkeypatch.setattr(cross_validation.os, "cpu_count", lambda: 16)
    records = cross_validation.run_cross_validation(["model=ease"], 5, tmp_path, parallel=3,
                                                    group="cross_validate/cv_mi")
    assert [r["fold"] for r in records] == [0, 1, 2, 3, 4]  # fold order, not the order of completion
    assert fake.groups == {"cross_validate/cv_mi"}  # every fold in the one W&B group
    assert [r["metrics"]["test/recall@10"] for r in records] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert fake.most_running == 3 and fake.threads == [5] * 5  # 16 cores // 3

    fake = _FakeFolds(3)
    monkeypatch.setattr(cross_validation, "run_training", fake)
    cross_validation.run_cross_validation(["model=ease"], 3, tmp_path, parallel=1)
    assert fake.most_running == 1 and fake.threads == [None] * 3  # one at a time: torch's own threads
    with pytest.raises(ValueError, match="cv.parallel=0 is not allowed"):
        cross_validation.run_cross_validation(["model=ease"], 3, tmp_path, parallel=0)


def test_a_failing_parallel_fold_fails_the_run_and_starts_no_more_folds(tmp_path: Path, monkeypatch):
    fake = _FakeFolds(6, failing=0)
    monkeypatch.setattr(cross_validation, "run_training", fake)
    with pytest.raises(RuntimeError, match="fold 0 failed"):
        cross_validation.run_cross_validation(["model=ease"], 6, tmp_path, parallel=2)
    # Fold 0 runs longest and fails after fold 1 has made way for fold 2: no fold starts after it.
    assert fake.started[:2] == [0, 1] and len(fake.started) <= 3
    fake = _FakeFolds(6, failing=0)
    monkeypatch.setattr(cross_validation, "run_training", fake)
    with pytest.raises(RuntimeError, match="fold 0 failed"):
        cross_validation.run_cross_validation(["model=ease"], 6, tmp_path, parallel=1)
    assert fake.started == [0]  # one at a time: nothing after the failed fold


def _script(*arguments: str, cache: Path, data_dir: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "cross_validate.py"), *arguments],
                          cwd=REPO_ROOT, env=script_env(cache, data_dir), capture_output=True, text=True,
                          timeout=900)


def test_bad_options_fail_before_training(tmp_path: Path):
    result = _script("cv.fold=3", cache=tmp_path)
    output = result.stderr + result.stdout
    assert result.returncode == 2 and "cv.fold is not an option of python scripts/cross_validate.py" in output
    result = _script("cv.folds=3", "model=nope", f"cv.out={tmp_path}", cache=tmp_path)
    assert result.returncode == 2 and "bad override" in result.stderr + result.stdout
    result = _script("cv.parallel=0", f"cv.out={tmp_path}", cache=tmp_path)
    assert result.returncode == 2 and "cv.parallel=0 is not allowed" in result.stderr + result.stdout
    result = _script("cv.parallel=all", f"cv.out={tmp_path}", cache=tmp_path)
    assert result.returncode == 2 and "cv.parallel='all' is not an integer" in result.stderr + result.stdout


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

    # The folds side by side (sharing the caches that the first run filled): EASE does not run
    # through torch, whose thread count (the cores' share of each fold) changes summation order,
    # so its figures are the same as one fold at a time. Logged to W&B, the folds are one group there.
    side_by_side = tmp_path / "cv_parallel"
    result = _script("cv.folds=3", "cv.parallel=3", "data=magazine", "model=ease", f"cv.out={side_by_side}",
                     f"cv.work={side_by_side / 'runs'}", "logger=wandb", cache=tmp_path / "cache",
                     data_dir=real_data_dir)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    for k, fold in enumerate(folds):
        again = json.loads((side_by_side / "runs" / f"fold{k}" / "metrics.json").read_text())
        assert {m: again[m] for m in fold if m.startswith("test/")} == {m: v for m, v in fold.items()
                                                                         if m.startswith("test/")}
        (wandb_run,) = (side_by_side / "runs" / f"fold{k}" / "wandb").glob("offline-run-*")
        logged = offline_run(wandb_run)
        assert (logged.name, logged.group) == (f"train/fold{k}", "cross_validate/cv_parallel")
        assert logged.summary["test/recall@10"] == pytest.approx(fold["test/recall@10"])


def test_the_cross_validation_driver_does_not_import_torch():
    # It reads fold results by key names; the folds train in processes of their own. Importing a
    # name from the training reports once made it load torch and Lightning (7.5 s against 0.4 s),
    # and so did the script's error types until the recsys.data and recsys.export packages stopped
    # importing their submodules (a bad option took 10 s to be refused, now under 1 s).
    probe = ("import sys, runpy; runpy.run_path('scripts/cross_validate.py', run_name='probe'); "
             "print(sorted({'torch', 'pytorch_lightning'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
