"""A run stopped by Ctrl-C exits with the shell's status for it and says what to resume from
(SIGTERM, delivered to a real process, is in test_resume.py)."""

from __future__ import annotations

import logging
import signal

import pytest
import torch

from tests.training.test_learning_curves import train_tiny

INTERRUPT = "+callbacks.interrupt._target_=tests.training.pausing.InterruptAtBatch"


@pytest.fixture(autouse=True)
def _keep_ctrl_c():
    # Lightning ignores Ctrl-C from the first one on, so that a second cannot break its shutdown.
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def test_ctrl_c_after_an_epoch_names_its_checkpoint_and_the_command_that_resumes_it(tmp_path, monkeypatch, caplog):
    out = tmp_path / "run"
    (out / ".hydra").mkdir(parents=True)  # what Hydra keeps of a run started from the command line
    (out / ".hydra" / "overrides.yaml").write_text("- data=tiny\n- trainer.max_epochs=3\n")
    with caplog.at_level(logging.ERROR, logger="recsys.training.interruption"), \
            pytest.raises(SystemExit) as stopped:
        train_tiny(tmp_path, monkeypatch, "logger=none", "trainer.max_epochs=3", INTERRUPT,
                   "+callbacks.interrupt.epoch=1", "+callbacks.interrupt.batch=1")
    assert stopped.value.code == 130  # Lightning exits 1
    last = out / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0
    assert (f"Training stopped by Ctrl-C (SIGINT) in epoch 1 (numbered from 0) at step 4, before its test and "
            f"reports; {last} holds the end of epoch 0. Resume it with: python scripts/train.py data=tiny "
            f"trainer.max_epochs=3 ckpt_path={last}") in caplog.text
    assert not (out / "metrics.json").exists()


def test_ctrl_c_in_the_first_epoch_says_that_nothing_was_saved(tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.ERROR, logger="recsys.training.interruption"), \
            pytest.raises(SystemExit) as stopped:
        train_tiny(tmp_path, monkeypatch, "logger=none", INTERRUPT, "+callbacks.interrupt.epoch=0",
                   "+callbacks.interrupt.batch=1")
    assert stopped.value.code == 130
    assert ("Training stopped by Ctrl-C (SIGINT) in epoch 0 (numbered from 0) at step 1, before its test and "
            "reports; it saved no checkpoint") in caplog.text
    assert not list((tmp_path / "run").glob("checkpoints/*.ckpt"))


def test_an_error_inside_training_is_not_taken_for_an_interruption(tmp_path, monkeypatch):
    with pytest.raises(SystemExit) as stopped:
        train_tiny(tmp_path, monkeypatch, "logger=none", INTERRUPT, "+callbacks.interrupt.epoch=1",
                   "+callbacks.interrupt.batch=1", "+callbacks.interrupt.exit_code=3")
    assert stopped.value.code == 3


def test_a_run_with_dataloader_workers_resumed_after_ctrl_c_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    import json

    settings = ("logger=none", "trainer.max_epochs=3", "data.num_workers=2")
    whole = train_tiny(tmp_path / "whole", monkeypatch, *settings)
    with pytest.raises(SystemExit):
        train_tiny(tmp_path / "stopped", monkeypatch, *settings, INTERRUPT, "+callbacks.interrupt.epoch=1",
                   "+callbacks.interrupt.batch=1")
    last = tmp_path / "stopped" / "run" / "checkpoints" / "last.ckpt"
    resumed = train_tiny(tmp_path / "resumed", monkeypatch, *settings, f"ckpt_path={last}")
    expected = json.loads((whole / "metrics.json").read_text())
    got = json.loads((resumed / "metrics.json").read_text())
    compared = [key for key in expected if key.startswith(("val/", "test/"))]
    assert {"val/rmse", "test/rmse", "test/recall@10", "test/loss"} <= set(compared)
    # The workers' negatives: a stream per batch, so the resumed epochs draw what the whole run drew.
    assert {key: got[key] for key in compared} == pytest.approx({key: expected[key] for key in compared}, abs=1e-6)


def test_ctrl_c_before_a_resumed_run_saves_names_the_checkpoint_it_resumed(tmp_path, monkeypatch, caplog):
    earlier = train_tiny(tmp_path / "a", monkeypatch, "logger=none", "trainer.max_epochs=1")
    resumed_from = earlier / "checkpoints" / "last.ckpt"
    with caplog.at_level(logging.ERROR, logger="recsys.training.interruption"), pytest.raises(SystemExit):
        train_tiny(tmp_path / "b", monkeypatch, "logger=none", "trainer.max_epochs=3", f"ckpt_path={resumed_from}",
                   INTERRUPT, "+callbacks.interrupt.epoch=1", "+callbacks.interrupt.batch=1")
    assert f"; {resumed_from} holds the end of epoch 0. Resume it with: " in caplog.text


def test_ctrl_c_while_testing_after_training_names_the_checkpoint_to_test(tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.ERROR, logger="recsys.training.interruption"), \
            pytest.raises(SystemExit) as stopped:
        train_tiny(tmp_path, monkeypatch, "logger=none", INTERRUPT, "+callbacks.interrupt.testing=true")
    assert stopped.value.code == 130
    best = tmp_path / "run" / "checkpoints" / "epoch00.ckpt"  # the tiny data's validation recall is 1.0 from epoch 0
    assert best.is_file()
    assert ("Testing stopped by Ctrl-C (SIGINT): training had ended; test its best checkpoint with: python "
            f"scripts/evaluate.py ckpt={best} split=test") in caplog.text
