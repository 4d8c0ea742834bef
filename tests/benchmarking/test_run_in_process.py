"""run_in_process: a run's result, its error, and a process that ends without either."""

from __future__ import annotations

import os
import signal
import threading
from multiprocessing.connection import Connection

import pytest

from recsys.benchmarking.harness import run_in_process


def _sends(value: int, connection: Connection) -> None:
    connection.send({"ok": True, "value": value * 2, "pid": os.getpid()})


def _reports_an_error(connection: Connection) -> None:
    connection.send({"ok": False, "error": "ValueError: data.batch_size must be >= 1, got 0"})


def _killed(connection: Connection) -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's out-of-memory killer does


def _exits(connection: Connection) -> None:
    os._exit(3)


def _outcome(target, args: tuple = ()) -> dict | BaseException:
    """run_in_process's result or exception; a failed test, not a hung one, if it never returns."""
    outcome: list = []

    def call() -> None:
        try:
            outcome.append(run_in_process(target, args, "fold 3"))
        except BaseException as err:
            outcome.append(err)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(timeout=120)
    assert outcome, "run_in_process is still waiting for a process that has ended"
    return outcome[0]


def test_the_result_comes_back_from_another_process():
    result = _outcome(_sends, (21,))
    assert result["value"] == 42 and result["pid"] != os.getpid() and "ok" not in result


def test_an_error_sent_by_the_run_is_raised_with_the_runs_name():
    error = _outcome(_reports_an_error)
    assert isinstance(error, RuntimeError)
    assert str(error) == "fold 3 failed: ValueError: data.batch_size must be >= 1, got 0"


@pytest.mark.parametrize(("target", "reason"), [(_killed, "killed by SIGKILL: out of memory?"),
                                                (_exits, "exit status 3")])
def test_a_process_that_ends_without_a_result_fails_instead_of_hanging(target, reason):
    error = _outcome(target)
    assert isinstance(error, RuntimeError)
    assert str(error) == f"fold 3 failed: its process ended without a result ({reason})"


def test_a_run_stopped_by_ctrl_c_exits_130_without_a_traceback(tmp_path, monkeypatch, capsys):
    from multiprocessing import Pipe

    from recsys.benchmarking import harness

    def interrupted(cfg) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("recsys.training.run.train", interrupted)
    receiver, sender = Pipe(duplex=False)
    with pytest.raises(SystemExit) as exited:
        harness._train_in_child(["data=magazine"], tmp_path / "run", None, None, sender)
    assert exited.value.code == 130 and not receiver.poll()  # the parent learns it from the exit status
    assert "Traceback" not in capsys.readouterr().err
