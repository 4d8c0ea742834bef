"""recsys.cli: how the entry points answer errors a user can act on."""

import logging
import os
import subprocess
import sys

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.cli import TRAINING_GROUPS, exit_on_user_error, sets_training_group
from tests.conftest import REPO_ROOT

BAD_SPLIT = {"_target_": "recsys.data.splits.SplitSpec", "strategy": "weird"}


def broken() -> None:
    """A config target with a bug, not a bad setting."""
    raise RuntimeError("a bug, not a setting")


@exit_on_user_error
def instantiate_main(config: dict) -> object:
    return instantiate(config)


def test_a_user_error_behind_hydras_instantiate_is_printed_as_its_own_message(caplog, monkeypatch):
    monkeypatch.delenv("RECSYS_DEBUG", raising=False)
    with caplog.at_level(logging.ERROR, logger="recsys"), pytest.raises(SystemExit) as exited:
        instantiate_main(BAD_SPLIT)
    assert exited.value.code == 2
    assert caplog.records[-1].getMessage().startswith(
        "data.split.strategy='weird' is not allowed; use one of: random, temporal, kfold\n")
    assert "Error in call to target" not in caplog.text and "ValueError(" not in caplog.text


def test_other_errors_behind_hydras_instantiate_propagate(monkeypatch):
    monkeypatch.delenv("RECSYS_DEBUG", raising=False)
    with pytest.raises(InstantiationException) as raised:
        instantiate_main({"_target_": "tests.test_cli.broken"})
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_recsys_debug_keeps_the_traceback(monkeypatch):
    monkeypatch.setenv("RECSYS_DEBUG", "1")
    with pytest.raises(InstantiationException):
        instantiate_main(BAD_SPLIT)


def test_lightning_device_lines_show_once_and_tips_never(caplog):
    from recsys.cli import LIGHTNING_TIPS_LOGGER, quiet_library_noise

    lightning = logging.getLogger(LIGHTNING_TIPS_LOGGER)
    caplog.set_level(logging.INFO, logger=LIGHTNING_TIPS_LOGGER)
    with quiet_library_noise():
        for _ in range(3):  # as three Trainers would
            lightning.info("GPU available: False, used: False")
            lightning.info("TPU available: False, using: 0 TPU cores")
        lightning.info("💡 Tip: For seamless cloud logging ...")
        lightning.info("`Trainer.fit` stopped: `max_epochs=1` reached.")
    lightning.info("GPU available: False, used: False")  # outside the block: untouched
    assert [r.getMessage() for r in caplog.records] == [
        "GPU available: False, used: False", "TPU available: False, using: 0 TPU cores",
        "`Trainer.fit` stopped: `max_epochs=1` reached.", "GPU available: False, used: False"]


@exit_on_user_error
def interrupted_main() -> None:
    raise KeyboardInterrupt


def test_ctrl_c_ends_with_one_line_and_the_shells_status(caplog, monkeypatch):
    monkeypatch.delenv("RECSYS_DEBUG", raising=False)
    with caplog.at_level(logging.ERROR, logger="recsys"), pytest.raises(SystemExit) as exited:
        interrupted_main()
    assert exited.value.code == 130
    assert [r.getMessage() for r in caplog.records] == ["Stopped by Ctrl-C (SIGINT)"]
    monkeypatch.setenv("RECSYS_DEBUG", "1")
    with pytest.raises(KeyboardInterrupt):
        interrupted_main()


@exit_on_user_error
def lightning_main(way_out: str) -> None:
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    if way_out == "sigterm":
        raise SIGTERMException  # Lightning's answer to SIGTERM: a SystemExit of status 0
    if way_out == "ctrl-c":
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            sys.exit(1)  # Lightning's answer to Ctrl-C
    sys.exit(int(way_out))


@pytest.mark.parametrize(("way_out", "status", "line"), [
    ("sigterm", 143, "Stopped by SIGTERM"), ("ctrl-c", 130, "Stopped by Ctrl-C (SIGINT)"), ("1", 1, None),
    ("0", 0, None)])
def test_lightnings_ways_out_of_a_signal_end_with_the_shells_status(caplog, monkeypatch, way_out, status, line):
    monkeypatch.delenv("RECSYS_DEBUG", raising=False)
    with caplog.at_level(logging.ERROR, logger="recsys"), pytest.raises(SystemExit) as exited:
        lightning_main(way_out)
    assert exited.value.code == status
    assert [r.getMessage() for r in caplog.records] == ([line] if line else [])


def test_the_training_groups_are_the_config_groups_that_shape_a_run():
    from tests.conftest import REPO_ROOT

    groups = {path.name for path in (REPO_ROOT / "conf").iterdir() if path.is_dir()} - {"hydra", "paths"}
    assert set(TRAINING_GROUPS) == groups


@pytest.mark.parametrize(("argument", "refused"), [
    ("data=magazine", True), ("+data=magazine", True), ("++model.text.trainable_layers=2", True),
    ("~logger", True), ("experiment=smoke", True), ("callbacks@x=none", True),
    ("ckpt=data.ckpt", False), ("paths.data_dir=/data", False), ("hydra.run.dir=model", False),
    ("--cfg", False), ("datasets=1", False),
])
def test_which_arguments_set_a_training_group(argument, refused):
    assert sets_training_group(argument) is refused


def read_back(text: str) -> str:
    """``text`` quoted for Hydra, parsed as an override and read from the config, as a script reads it
    (interpolations resolved)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from recsys.cli import hydra_quoted

    value = OverridesParser.create().parse_override(f"query={hydra_quoted(text)}").value()
    return OmegaConf.create({"query": value}).query


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text_quoted_for_hydra_reads_back_as_itself(text):
    assert read_back(text) == text


@pytest.mark.parametrize("text", ["café", "bright, not dull (warm)", "don't", "a\\b'", "${oc.env:HOME}", "x\\${y}",
                                  "ends\\", "line\\\n"])
def test_texts_hydras_grammar_refuses_or_changes_read_back_as_themselves(text):
    assert read_back(text) == text


def test_text_overrides_quote_only_the_keys_given_and_leave_quoted_or_null_values(monkeypatch):
    from recsys.cli import RECOMMEND_TEXT_KEYS, text_overrides

    seen = []
    monkeypatch.setattr(sys, "argv", ["recommend.py", "export=/e", "user=007", "query=café, crème",
                                      "k=5", "+query='kept'", "user=null", 'query="kept too"', "query"])
    text_overrides(*RECOMMEND_TEXT_KEYS)(lambda: seen.extend(sys.argv))()
    assert seen == ["recommend.py", "export=/e", "user='007'", "query='café, crème'", "k=5", "+query='kept'",
                    "user=null", 'query="kept too"', "query"]


@pytest.mark.parametrize(("argument", "begins", "ends"), [
    ("data.dataset.reviews=/data/mes données/r.csv",
     "Cannot read the override 'data.dataset.reviews=/data/mes données/r.csv' ('é' at character 36): outside "
     "quotes, Hydra reads accents, commas, brackets, parentheses and quotes in a value as its own syntax.",
     "A value that is text (a path, a query) wants quotes: data.dataset.reviews='/data/mes données/r.csv' (in a "
     "shell: \"data.dataset.reviews='/data/mes données/r.csv'\")"),
    ("trainer.max_epochs=3)", "Cannot read the override 'trainer.max_epochs=3)' (extraneous input ')' expecting "
     "<EOF>): ", "wants quotes: trainer.max_epochs='3)' (in a shell: \"trainer.max_epochs='3)'\")"),
    ('ckpt=/runs/a"b.ckpt', "Cannot read the override", "wants quotes: ckpt='/runs/a\"b.ckpt'"),  # no shell form
])
def test_an_override_hydra_cannot_read_is_answered_with_the_quoted_one(argument, begins, ends):
    from recsys.cli import override_syntax_error

    error = override_syntax_error(argument)
    assert error is not None and error.startswith(begins) and error.endswith(ends), error
    for readable in ("trainer.max_epochs=3", "~logger", "+a.b=c", "paths.data_dir=${oc.env:HOME}/d", "k=1,2"):
        assert override_syntax_error(readable) is None


def test_every_hydra_script_answers_an_unreadable_override_before_composing(tmp_path):
    scripts = sorted(p.name for p in (REPO_ROOT / "scripts").glob("*.py") if "@hydra.main(" in p.read_text())
    assert len(scripts) == 7, scripts
    outputs = tmp_path / "outputs"
    for script in scripts:
        # A key that no script reads as text (recommend.py quotes its out=, a path).
        result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / script), "dir=/tmp/é (copy)"],
                                capture_output=True, text=True, cwd=tmp_path, timeout=120,
                                env={**os.environ, "RECSYS_OUTPUT_DIR": str(outputs)})
        assert result.returncode == 2, (script, result.stderr)
        assert result.stderr.startswith("Cannot read the override 'dir=/tmp/é (copy)' ('é' at character 10)"), script
        assert "HYDRA_FULL_ERROR" not in result.stderr, script
    assert not list(tmp_path.iterdir())  # no run folder, no log: refused before Hydra composed anything
