"""The benchmark harness on a trained network: a fresh process trains it, and its best checkpoint
is evaluated again for coverage, popularity and the recall curve (as the baselines are)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys.benchmarking.harness import run_training
from tests.conftest import TINY_BERT, tiny_reviews, write_lines


def test_a_trained_networks_run_adds_the_recall_curve_of_its_best_checkpoint(tmp_path: Path):
    write_lines(tmp_path / "data" / "tiny" / "reviews.json.gz", tiny_reviews(num_users=12, num_items=10))
    encoder = ",".join(f"{key}:{value}" for key, value in TINY_BERT.items())
    out = tmp_path / "run"
    result = run_training(
        ["data.dataset.name=tiny", "data.dataset.subdir=tiny", "data.dataset.reviews=reviews.json.gz",
         f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}",
         f"+model.net.encoder_config={{{encoder}}}", "trainer.max_epochs=1", "model.min_steps=0",
         "data.batch_size=8", "data.item_max_tokens=32", "data.review_max_tokens=32",
         "model.module.ease_fusion=0", "model.module.loss.distill_weight=0"],
        out, "tiny two-tower", threads=1)
    metrics = result["metrics"]
    tested = json.loads((out / "metrics.json").read_text())
    # The training's own test pass and the harness's evaluation of the same checkpoint agree.
    for k in (5, 10, 20):
        assert metrics[f"test/recall@{k}"] == pytest.approx(tested[f"test/recall@{k}"], abs=1e-6)
    curve = [metrics[f"test/recall@{k}"] for k in range(1, 51)]
    assert curve == sorted(curve) and curve[-1] == pytest.approx(1.0)  # 10 items: all ranked by K = 50
    assert 0 < metrics["test/coverage@10"] <= 1 and metrics["test/popularity@10"] > 0
    assert result["minutes"] > 0 and result["peak_mb"] > 100
