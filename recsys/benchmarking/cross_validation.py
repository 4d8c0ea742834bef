"""k-fold cross-validation: train and test one model on every fold, and summarise the metrics."""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from recsys.benchmarking.harness import require_fresh, run_training
from recsys.training.metrics_keys import RATING_CHECKPOINT_KEY, metric_cutoff, shown_at

log = logging.getLogger(__name__)

# Ranking metrics at every K (a baseline's evaluation gives K = 1..50) are kept in the per-fold
# records but would swamp the table: it shows these K, and recall@50 too.
SUMMARY_KS = (5, 10, 20)
SUMMARY_RECALL_KS = (*SUMMARY_KS, 50)


def fold_overrides(folds: int, fold: int) -> list[str]:
    """The ``train`` overrides that select fold ``fold`` of ``folds``."""
    return ["data.split.strategy=kfold", f"data.split.folds={folds}", f"data.split.fold={fold}"]


def run_cross_validation(overrides: list[str], folds: int, work: Path, parallel: int = 1,
                         group: str | None = None) -> list[dict]:
    """Train and test ``overrides`` once per fold (each in its own process, files in
    ``work/fold<k>``); returns one record per fold, in fold order: ``{"fold", "metrics", "minutes",
    "peak_mb"}``. ``parallel`` folds run at once, each with its share of the CPU cores (for a
    machine with many cores, or one GPU that a single small run leaves mostly idle). ``group``: the
    W&B group of the folds' runs, when they log there."""
    if folds < 2:
        raise ValueError(f"cv.folds={folds} is not allowed; use 2 or more")
    if parallel < 1:
        raise ValueError(f"cv.parallel={parallel} is not allowed; use 1 or more")
    require_fresh([work / f"fold{fold}" for fold in range(folds)], "cv.work")
    parallel = min(parallel, folds)
    threads = max(1, (os.cpu_count() or 1) // parallel) if parallel > 1 else None
    if threads is not None:
        log.info("%d folds at a time, %d torch threads each: figures can differ from a one-at-a-time run "
                 "by floating-point summation order", parallel, threads)

    stop = threading.Event()  # set by the first failure: the folds not started by then are skipped

    def run_fold(fold: int) -> dict | None:
        if stop.is_set():
            return None
        log.info("Fold %d of %d", fold + 1, folds)
        try:
            result = run_training([*overrides, *fold_overrides(folds, fold)], work / f"fold{fold}", f"fold {fold}",
                                  threads=threads, group=group)
        except BaseException:
            stop.set()  # before this worker takes the next fold
            raise
        return {"fold": fold, **result}

    # Folds start in order, so a skipped one comes after the failed one, whose error is raised first.
    with ThreadPoolExecutor(max_workers=parallel) as pool:  # threads only wait: each fold is a process
        futures = [pool.submit(run_fold, fold) for fold in range(folds)]
        try:
            records = [future.result() for future in futures]
            return [r for r in records if r is not None]  # only after a failure, raised above, is one None
        except BaseException:
            stop.set()  # an interrupt here too: the running folds finish, no more start
            raise


def _kept(metric: str) -> bool:
    if not metric.startswith(("test/", "val/", f"{RATING_CHECKPOINT_KEY}/")):
        return False
    return shown_at(metric, SUMMARY_RECALL_KS if metric_cutoff(metric)[0].endswith("/recall") else SUMMARY_KS)


def _row_order(metric: str) -> tuple[int, str, int]:
    """Test metrics first, then the rating checkpoint's, minutes and memory, validation last;
    by name, and by K in numeric order (recall@5 before recall@10)."""
    group = next((rank for rank, prefix in enumerate(("test/", f"{RATING_CHECKPOINT_KEY}/"))
                  if metric.startswith(prefix)), 3 if metric.startswith("val/") else 2)
    base, k = metric_cutoff(metric)
    return group, base, -1 if k is None else k


def summarize_folds(records: list[dict]) -> pd.DataFrame:
    """One row per metric (test and validation, plus minutes and peak memory): a column per
    fold, then ``mean`` and ``std`` (sample std over folds)."""
    columns = {}
    for record in sorted(records, key=lambda r: r["fold"]):
        values = {k: float(v) for k, v in record["metrics"].items() if _kept(k)}
        values.update(minutes=record["minutes"], peak_mb=record["peak_mb"])
        columns[f"fold{record['fold']}"] = values
    table = pd.DataFrame(columns)
    order = sorted(table.index, key=_row_order)
    table = table.loc[order]
    table["mean"] = table[list(columns)].mean(axis=1)
    table["std"] = table[list(columns)].std(axis=1, ddof=1)
    table.index.name = "metric"
    return table


def write_cv_report(records: list[dict], directory: Path, command: str) -> Path:
    """``directory/cv_results.md`` (metric -> mean ± std, and each fold) and ``cv_results.csv``."""
    table = summarize_folds(records)
    directory.mkdir(parents=True, exist_ok=True)
    table.to_csv(directory / "cv_results.csv")
    folds = [c for c in table.columns if c.startswith("fold")]
    lines = [
        f"# Cross-validation: {len(folds)} folds", "",
        f"Command: `{command}`", "",
        "Each fold tests a disjoint part of the interactions (data.split.strategy=kfold); every "
        "interaction is tested once. Mean ± sample std over folds.", "",
        "| metric | mean ± std | " + " | ".join(folds) + " |",
        "|---|---:|" + "---:|" * len(folds),
    ]
    for metric, row in table.iterrows():
        digits = 1 if metric == "peak_mb" or metric.endswith("ranked_users") or "popularity" in metric else 4
        cells = " | ".join(f"{row[f]:.{digits}f}" for f in folds)
        lines.append(f"| {metric} | {row['mean']:.{digits}f} ± {row['std']:.{digits}f} | {cells} |")
    path = directory / "cv_results.md"
    path.write_text("\n".join(lines) + "\n")
    return path
