from pathlib import Path

import pytest

from recsys.benchmarking.report import results_frame, results_table, write_report


def record(model: str, split: str, seed: int, recall: float, rmse: float | None = None) -> dict:
    metrics = {f"test/recall@{k}": min(1.0, recall * k / 10) for k in range(1, 51)}
    metrics.update({"test/ndcg@10": recall / 2, "test/coverage@10": 0.5, "test/popularity@10": 40.0})
    if rmse is not None:
        metrics["test/rmse"] = rmse
    return {"model": model, "split": split, "seed": seed, "metrics": metrics, "minutes": 1.5, "peak_mb": 700.0}


RECORDS = [record("ease", "random", 0, 0.13), record("ease", "random", 1, 0.15),
           record("bias", "random", 0, 0.02, rmse=0.87), record("bias", "random", 1, 0.02, rmse=0.89),
           record("ease", "temporal", 0, 0.10)]


def test_table_has_mean_and_std_over_seeds():
    table = results_table(results_frame(RECORDS), "random")
    lines = table.splitlines()
    assert lines[0].startswith("| model | RMSE | MAE | P@10 | R@10 |")
    ease = next(line for line in lines if line.startswith("| ease |")).split(" | ")
    assert ease[4] == "0.1400 ± 0.0141"  # R@10 over seeds 0.13, 0.15
    assert ease[1] == "–"                 # ranking-only model: no RMSE
    bias = next(line for line in lines if line.startswith("| bias |")).split(" | ")
    assert bias[1] == "0.8800 ± 0.0141"


def test_report_writes_table_and_plots(tmp_path: Path):
    path = write_report(RECORDS, tmp_path, "tiny", "python scripts/benchmark.py data=tiny")
    text = path.read_text()
    assert "## random split (seeds 0, 1)" in text and "## temporal split (seeds 0)" in text
    assert "Made by `python scripts/benchmark.py data=tiny`" in text
    for split in ("random", "temporal"):
        assert (tmp_path / f"recall_at_k_{split}.png").stat().st_size > 10_000
    assert (tmp_path / "results.csv").read_text().count("\n") == len(RECORDS) + 1


def test_single_seed_has_no_std():
    table = results_table(results_frame(RECORDS), "temporal")
    assert "| ease | – | – | – | 0.1000 |" in table


@pytest.mark.parametrize("bad", [["unknown-model"]])
def test_unknown_model_is_refused(bad, tmp_path):
    from recsys.benchmarking.harness import run_benchmark

    with pytest.raises(ValueError, match="unknown models"):
        run_benchmark("tiny", [0], bad, tmp_path, tmp_path)
