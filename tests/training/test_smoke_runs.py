"""End-to-end runs of scripts/train.py and scripts/evaluate.py on the real Magazine data."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import REPO_ROOT, script_env

pytestmark = pytest.mark.slow


def run(script: str, *overrides: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / script), *overrides], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def env(tmp_path_factory, real_data_dir) -> dict[str, str]:
    """One cache for the module's runs (they share the data's parsing and embeddings)."""
    return script_env(tmp_path_factory.mktemp("cache"), real_data_dir)


@pytest.fixture(scope="module")
def csv_run(env, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One smoke run with the CSV logger (its folder and output), shared by the tests that check,
    resume and export it: each smoke run costs about 20 s of the suite."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    return out, run("train.py", "experiment=smoke", "logger=csv", f"hydra.run.dir={out}", env=env)


@pytest.mark.parametrize("logger", ["csv", "wandb"])
def test_smoke_run_writes_metrics_checkpoints_and_reports(logger, env, tmp_path, request):
    if logger == "csv":
        out, result = request.getfixturevalue("csv_run")
    else:
        out = tmp_path / "run"
        result = run("train.py", "experiment=smoke", f"logger={logger}", f"hydra.run.dir={out}", env=env)
    assert "LeafSpec" not in result.stderr and "in eval mode" not in result.stderr  # recsys.cli.LIBRARY_NOISE
    output = result.stdout + result.stderr
    assert "litlogger" not in output  # recsys.cli.LIGHTNING_TIP_PREFIX
    assert "train/loss" in output and "v_num" not in output  # recsys.training.callbacks.RunProgressBar
    # Two trainers (fit + test, and the rating checkpoint's test), one device line: recsys.cli.LightningInfoFilter
    assert output.count("GPU available: False, used: False") == 1
    assert "anonymous setting" not in output  # recsys.training.loggers.drop_unset_wandb_anonymous
    # recsys.training.summary.ComponentSummary, not Lightning's summary and its column of zero FLOPs.
    assert "FLOPs" not in output
    assert "Text encoder: all-MiniLM-L6-v2 (bundled): top 1 of 6 layers fine-tuned" in output
    metrics = json.loads((out / "metrics.json").read_text())
    # The console summary (recsys.training.report.metrics_table) shows the test figures at K = 10.
    summary = [line.split() for line in output.splitlines() if line.startswith("test ")]
    assert any(row[:2] == ["test", "10"] and f"{metrics['test/recall@10']:.4f}" in row for row in summary)
    for key in ("val/rmse", "test/rmse", "test/recall@10", "test/ndcg@20", "test/mrr@5", "train_minutes"):
        assert key in metrics
    assert 0.3 < metrics["test/rmse"] < 2.0 and 0.0 <= metrics["test/recall@10"] <= 1.0
    assert metrics["test/ranked_users"] > 100
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert len(list((out / "checkpoints").glob("epoch*.ckpt"))) == 1
    # The rating checkpoint (lowest validation RMSE) of a one-epoch run is the same epoch.
    assert [p.name for p in (out / "checkpoints").glob("rating-*.ckpt")] == ["rating-epoch00.ckpt"]
    assert metrics["rating_checkpoint/test/rmse"] == pytest.approx(metrics["test/rmse"], abs=1e-6)
    assert (metrics["checkpoint"], metrics["rating_checkpoint"]) == ("epoch00.ckpt", "rating-epoch00.ckpt")
    # The console ends with the commands that take the best checkpoint further.
    assert f"python scripts/export.py ckpt={out / 'checkpoints' / 'epoch00.ckpt'} out=exports/run" in output
    assert (out / "learning_curves.png").stat().st_size > 10_000
    recommendations = (out / "recommendations.md").read_text().splitlines()
    assert len(recommendations) == 2 + 3 * 10  # header + 3 users x top-10
    if logger == "wandb":
        runs = list((out / "wandb").glob("offline-run-*"))
        assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))
    else:
        logged = pd.read_csv(out / "csv" / "version_0" / "metrics.csv")
        assert logged["train/loss"].notna().sum() == 8  # every step of the 8-batch epoch (the loss curve)
        epoch_loss = logged["train/epoch_loss"].dropna()  # and the epoch's mean, weighted by batch size
        assert len(epoch_loss) == 1 and logged["train/loss"].min() < epoch_loss.item() < logged["train/loss"].max()
        # The learning curves' own record (recsys.training.callbacks.LearningCurves) holds the same figures.
        curves = pd.read_csv(out / "learning_curves.csv")
        for column in ("train/loss", "train/epoch_loss", "val/rmse", "val/recall@10"):
            assert curves[column].dropna().tolist() == pytest.approx(logged[column].dropna().tolist(), rel=1e-6)
        best = next((out / "checkpoints").glob("epoch*.ckpt"))
        evaluated = run("evaluate.py", f"ckpt={best}", "split=test", f"hydra.run.dir={tmp_path / 'eval'}", env=env)
        again = json.loads((out / "metrics_test_epoch00.json").read_text())
        for key in ("test/rmse", "test/mae", "test/recall@10", "test/ndcg@10", "test/precision@5"):
            assert again[key] == pytest.approx(metrics[key], abs=1e-6), key
        # Printed once, as the two tables of train.py's summary.
        printed = [line.split() for line in evaluated.stdout.splitlines() if line.startswith("test ")]
        assert [row[:2] for row in printed] == [["test", f"{again['test/loss']:.4f}"], ["test", "5"], ["test", "10"],
                                                ["test", "20"]]
        assert f"{again['test/recall@10']:.4f}" in printed[2] and "test/recall@10" not in evaluated.stdout
        # The same checkpoint, counting only the held-out items rated 4 or 5 as relevant.
        run("evaluate.py", f"ckpt={best}", "split=test", "relevance_min_rating=4",
            f"hydra.run.dir={tmp_path / 'eval_liked'}", env=env)
        liked = json.loads((out / "metrics_test_epoch00_min-rating-4.json").read_text())
        assert liked["test/rmse"] == pytest.approx(metrics["test/rmse"], abs=1e-6)  # over every held-out pair
        assert 0.5 * metrics["test/ranked_users"] < liked["test/ranked_users"] < metrics["test/ranked_users"]
        assert liked["test/recall@10"] != pytest.approx(metrics["test/recall@10"], abs=1e-6)
        rating = out / "checkpoints" / metrics["rating_checkpoint"]
        run("evaluate.py", f"ckpt={rating}", "split=test", f"hydra.run.dir={tmp_path / 'eval2'}", env=env)
        rated = json.loads((out / "metrics_test_rating-epoch00.json").read_text())  # beside the first, not over it
        assert rated["test/rmse"] == pytest.approx(metrics["rating_checkpoint/test/rmse"], abs=1e-6)


def test_resume_from_last_checkpoint_continues_without_redoing_epochs(env, csv_run, tmp_path):
    last = csv_run[0] / "checkpoints" / "last.ckpt"  # of its one epoch
    resumed = tmp_path / "resumed"
    result = run("train.py", "experiment=smoke", "logger=csv", "test=false", "trainer.max_epochs=2",
                 f"ckpt_path={last}", f"hydra.run.dir={resumed}", env=env)
    assert "Restored all states from the checkpoint" in result.stdout + result.stderr
    rows = (resumed / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    epochs = {row.split(",")[header.index("epoch")] for row in rows[1:]}
    assert epochs - {""} == {"1"}  # only the second epoch ran (learning-rate rows have no epoch)


def test_export_serves_the_trained_test_metrics(env, csv_run, tmp_path, real_data_dir):
    import numpy as np

    from recsys.data.readers import read_reviews
    from recsys.data.splits import random_split
    from recsys.serving.recommender import Recommender
    from tests.conftest import MAGAZINE

    out = csv_run[0]
    best = next((out / "checkpoints").glob("epoch*.ckpt"))
    export = tmp_path / "export"
    exported = run("export.py", f"ckpt={best}", f"out={export}", f"hydra.run.dir={tmp_path / 'x'}", env=env)
    assert "Writing model shards" not in exported.stdout + exported.stderr  # transformers' bar, silenced
    metrics = json.loads((out / "metrics.json").read_text())
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["metrics"]["test/recall@10"] == pytest.approx(metrics["test/recall@10"])
    saved = torch.load(best, map_location="cpu", weights_only=True)  # the export names the weights it holds
    assert manifest["source"] == {"checkpoint": str(best.resolve()), "epoch": saved["epoch"],
                                  "global_step": saved["global_step"]}

    reviews = read_reviews(real_data_dir / MAGAZINE.subdir / MAGAZINE.reviews).table
    reviews["split"] = random_split(reviews, 0)
    held_out = reviews[reviews["split"] == "test"].groupby("user_id")["item_id"].apply(set)
    recommender = Recommender.from_export(export)
    users = list(held_out.index)
    answers = recommender.recommend_users(users, k=10)
    recall = np.mean([len({a.item_id for a in answer} & held_out[u]) / len(held_out[u])
                      for u, answer in zip(users, answers, strict=True)])
    assert recall == pytest.approx(metrics["test/recall@10"], abs=1e-6)

    # Held-out reviews read as free-text queries find their item more often with the query-document
    # text similarity in the ranking (the default weight) than by the towers' cosine alone.
    table = tmp_path / "queries.md"
    run("benchmark_queries.py", f"export={export}", "--weights", "0", "2", "--splits", "test", "--out", str(table),
        env=env)
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.read_text().splitlines()
            if line.startswith("| test |")]
    hits = {(row[1], row[2]): float(row[4]) for row in rows}
    for form in ("summary", "summary + text"):
        assert hits[form, "2 (default)"] > hits[form, "0"] + 0.05, hits

    printed = run("recommend.py", f"export={export}", f"user={users[0]}", "k=5", env=env).stdout
    assert f"Top 5 for user {users[0]}" in printed and "predicted" in printed
    printed = run("recommend.py", f"export={export}", "query=cooking magazine with recipes", "k=3", env=env)
    assert "your query" in printed.stdout
