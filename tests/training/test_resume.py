"""A run killed with SIGKILL in the middle of an epoch and restarted with ``ckpt_path=last`` ends with
the metrics of an uninterrupted run of the same seed, without re-running finished epochs."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import REPO_ROOT, script_env

pytestmark = pytest.mark.slow

# Small and quick, but with every source of randomness in play: shuffling, sampled negatives,
# id dropout and user-review dropout.
OVERRIDES = [
    "data=magazine", "data.item_max_tokens=64", "data.review_max_tokens=64", "data.batch_size=64",
    "model.text.trainable_layers=0", "trainer.max_epochs=3", "trainer.log_every_n_steps=1", "logger=csv",
    "task_name=resume",
]
# Equality, up to float summation order: the resumed run replays the same computation.
TOLERANCE = 1e-6


def _command(run_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "scripts" / "train.py"), *OVERRIDES,
            f"paths.output_dir={output_dir}", f"hydra.run.dir={run_dir}", *extra]


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _epochs_trained(run_dir: Path) -> set[str]:
    """Epochs with logged training steps (the final test pass logs under the next epoch number)."""
    rows = [row.split(",") for row in (run_dir / "csv" / "version_0" / "metrics.csv").read_text().splitlines()]
    epoch, loss = rows[0].index("epoch"), rows[0].index("train/loss")
    return {row[epoch] for row in rows[1:] if row[loss]}


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path: Path, real_data_dir: Path):
    output = tmp_path / "outputs"
    # PYTHONPATH: the pausing callback lives under tests/.
    env = script_env(tmp_path / "cache", real_data_dir, PYTHONPATH=str(REPO_ROOT))
    full = tmp_path / "uninterrupted"
    _run(_command(full, tmp_path / "elsewhere"), env)

    killed = output / "resume" / "killed"
    marker = tmp_path / "paused"
    pause = ["+callbacks.pause._target_=tests.training.pausing.PauseAtBatch", "+callbacks.pause.epoch=1",
             "+callbacks.pause.batch=10", f"+callbacks.pause.marker={marker}"]
    process = subprocess.Popen(_command(killed, output, *pause), cwd=REPO_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.read_text().startswith("epoch 1 batch 10"), "the run never reached the pause point"
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        process.kill()
    last = killed / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0  # epoch 0 finished, 1 did not
    assert not (killed / "metrics.json").exists()

    resumed = output / "resume" / "resumed"
    result = _run(_command(resumed, output, "ckpt_path=last"), env)
    assert f"Restored all states from the checkpoint at {last}" in result.stdout + result.stderr
    assert _epochs_trained(resumed) == {"1", "2"}  # epoch 0 was not run again
    assert _epochs_trained(full) == {"0", "1", "2"}

    expected = json.loads((full / "metrics.json").read_text())
    got = json.loads((resumed / "metrics.json").read_text())
    compared = [k for k in expected if k.startswith(("val/", "test/"))]
    assert {"val/rmse", "val/recall@10", "test/rmse", "test/recall@10", "test/ndcg@10"} <= set(compared)
    for key in compared:
        assert got[key] == pytest.approx(expected[key], abs=TOLERANCE), key
    # The learning curves came with the checkpoint: the resumed run draws epoch 0 too.
    curves = pd.read_csv(resumed / "learning_curves.csv")
    pd.testing.assert_frame_equal(curves, pd.read_csv(full / "learning_curves.csv"), atol=TOLERANCE)
    assert set(curves["epoch"]) == {0, 1, 2}


def test_a_sigterm_run_exits_143_and_the_command_it_prints_resumes_it(tmp_path: Path, real_data_dir: Path):
    # Ctrl-C is tested in-process (test_interruption.py): Python turns SIGINT into KeyboardInterrupt.
    output = tmp_path / "outputs"
    env = script_env(tmp_path / "cache", real_data_dir, PYTHONPATH=str(REPO_ROOT))
    stopped = output / "resume" / "stopped"
    marker = tmp_path / "paused"
    pause = ["+callbacks.pause._target_=tests.training.pausing.PauseAtBatch", "+callbacks.pause.epoch=1",
             "+callbacks.pause.batch=2", f"+callbacks.pause.marker={marker}", "+callbacks.pause.seconds=2"]
    process = subprocess.Popen(_command(stopped, output, *pause), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "the run never reached the pause point"
        process.send_signal(signal.SIGTERM)
        log, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, log[-3000:]  # Lightning exits 0: a scheduler took the run for finished
    last = stopped / "checkpoints" / "last.ckpt"
    assert "Training stopped by SIGTERM in epoch 1 (numbered from 0) at step " in log, log[-3000:]
    assert f"{last} holds the end of epoch 0. Resume it with: python scripts/train.py " in log
    assert not (stopped / "metrics.json").exists()

    python, *command = shlex.split(log.split("Resume it with: ")[1].splitlines()[0])
    assert python == "python" and command[-1] == f"ckpt_path={last}" and "data=magazine" in command
    resumed = output / "resume" / "resumed"
    result = _run([sys.executable, *command, f"hydra.run.dir={resumed}"], env)
    assert f"Restored all states from the checkpoint at {last}" in result.stdout + result.stderr
    assert _epochs_trained(resumed) == {"1", "2"}
    assert json.loads((resumed / "metrics.json").read_text())["test/recall@10"] > 0
