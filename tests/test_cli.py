"""recsys.cli: how the entry points answer errors a user can act on."""

import logging

import pytest
from hydra.errors import InstantiationException

from recsys.cli import exit_on_user_error


def _raising(error: BaseException):
    @exit_on_user_error
    def main() -> None:
        raise error

    return main


def _wrapped_by_hydra(cause: BaseException) -> InstantiationException:
    try:
        try:
            raise cause
        except type(cause) as err:
            raise InstantiationException(f"Error in call to target 'x.Y':\n{err!r}\nfull_key: data.split") from err
    except InstantiationException as wrapped:
        return wrapped


def test_a_user_error_behind_hydras_instantiate_is_printed_as_its_own_message(caplog, monkeypatch):
    monkeypatch.delenv("RECSYS_DEBUG", raising=False)
    main = _raising(_wrapped_by_hydra(ValueError("data.split.strategy='weird' is not allowed")))
    with caplog.at_level(logging.ERROR, logger="recsys"), pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert caplog.records[-1].getMessage().startswith("data.split.strategy='weird' is not allowed\n")
    assert "Error in call to target" not in caplog.text and "ValueError(" not in caplog.text


def test_other_errors_behind_hydras_instantiate_propagate(monkeypatch):
    monkeypatch.delenv("RECSYS_DEBUG", raising=False)
    with pytest.raises(InstantiationException):
        _raising(_wrapped_by_hydra(RuntimeError("a bug, not a setting")))()


def test_recsys_debug_keeps_the_traceback(monkeypatch):
    monkeypatch.setenv("RECSYS_DEBUG", "1")
    with pytest.raises(InstantiationException):
        _raising(_wrapped_by_hydra(ValueError("bad value")))()
