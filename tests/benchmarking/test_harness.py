"""scripts/benchmark.py end to end on the real Magazine data (quick models only)."""

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, script_env

pytestmark = pytest.mark.slow


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
