"""The benchmark harness: scripts/benchmark.py end to end on the real Magazine data (quick models
only), and a trained network's run, whose best checkpoint is evaluated again for coverage,
popularity and the recall curve (as the baselines are)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.benchmarking.harness import run_training
from tests.conftest import REPO_ROOT, TINY_BERT, script_env, tiny_reviews, write_lines


@pytest.mark.slow
def test_benchmark_script_writes_the_report(real_data_dir, tmp_path):
    env = script_env(tmp_path / "cache", real_data_dir)
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "benchmark.py"), "data=magazine", "--models", "popularity",
         "ease", "mf", "--out", str(tmp_path / "reports"), "--work", str(tmp_path / "work"), "trainer.max_epochs=1"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LeafSpec" not in result.stderr  # each run's process filters recsys.cli.LIBRARY_NOISE too
    report = (tmp_path / "reports" / "magazine" / "results.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| popularity |") or line.startswith("| ease |")
            or line.startswith("| mf |")]
    assert len(rows) == 6  # three models, random and temporal splits
    mf = next(line for line in rows if line.startswith("| mf |")).split(" | ")
    assert 0.3 < float(mf[1]) < 2.0  # MF predicts ratings: an RMSE is reported
    assert (tmp_path / "reports" / "magazine" / "recall_at_k_random.png").is_file()
    assert (tmp_path / "reports" / "magazine" / "learning_curves_mf-random-seed0.png").is_file()


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


def test_a_shipped_dataset_config_gives_its_files_with_its_defaults_applied():
    from hydra.errors import MissingConfigException

    from recsys.benchmarking.harness import configured_dataset

    magazine = configured_dataset("magazine")  # conf/data/magazine.yaml: musical_instruments' config, overridden
    assert (magazine.name, magazine.reviews, magazine.meta) == (
        "magazine", "Magazine_Subscriptions_5.json.gz", "meta_Magazine_Subscriptions.json.gz")
    assert magazine.review_fields.user == "reviewerID"  # inherited from the musical_instruments config
    assert configured_dataset("musical_instruments").meta is None
    with pytest.raises(MissingConfigException, match=r"Could not find 'data/nope'(.|\n)*Available options in "
                       r"'data':\n\tcustom\n\tmagazine\n\tmusical_instruments"):
        configured_dataset("nope")
