"""The commands that the README, the reports and the scripts' own usage show: each one's overrides
compose, so that a documented command is never refused by the config it documents."""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from recsys.cli import RECOMMEND_TEXT_KEYS, quoted_text_values, sets_training_group
from tests.conftest import REPO_ROOT

# The config each Hydra script composes; the drivers (cross-validation, benchmarks) pass every
# override but their own options (prefix.key=...) to the training config.
CONFIG_OF_SCRIPT = {
    "train": "train", "prepare_data": "train", "evaluate": "evaluate", "export": "export", "serve": "serve",
    "recommend": "recommend", "add_items": "add_items", "cross_validate": "train", "benchmark": "train",
    "benchmark_cold_items": "train",
}
DRIVER_OPTIONS = ("cv.", "cold.")
SETTINGS_FROM_CHECKPOINT_OR_EXPORT = ("evaluate", "export", "serve", "recommend", "add_items")
# A command: `python scripts/<name>.py` and its arguments up to the end of the line, a backtick
# or a comment (continuation lines are joined first).
COMMAND = re.compile(r"python scripts/(\w+)\.py((?:[ \t]+[^\s`#|]+)*)")
DOCUMENTS = ("README.md", "reports/**/*.md", "scripts/*.py")  # of a script, its docstring


def documented_commands() -> Iterator[tuple[str, str, list[str]]]:
    """(document, script, arguments) of every documented command of a Hydra script."""
    for pattern in DOCUMENTS:
        for path in sorted(REPO_ROOT.glob(pattern)):
            text = path.read_text()
            if path.suffix == ".py":  # the usage in its docstring, not the code
                text = ast.get_docstring(ast.parse(text)) or ""
            for match in COMMAND.finditer(re.sub(r"\\\n\s*", " ", text)):
                if match.group(1) in CONFIG_OF_SCRIPT:
                    yield str(path.relative_to(REPO_ROOT)), match.group(1), shlex.split(match.group(2))


def overrides_of(arguments: list[str]) -> list[str]:
    """The Hydra overrides among a command's ``arguments``: placeholders (``<run>``) filled in,
    a multirun sweep's first value, no driver options or command-line flags."""
    sweep = "-m" in arguments or "--multirun" in arguments
    overrides = []
    for argument in arguments:
        if "=" not in argument or argument.startswith(("-", *DRIVER_OPTIONS, "hydra.")):
            continue
        argument = re.sub(r"<[^>]+>", "x", argument)
        if sweep:
            key, value = argument.split("=", 1)
            argument = f"{key}={value.split(',')[0]}"
        overrides.append(argument)
    return overrides


def composed(script: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(CONFIG_OF_SCRIPT[script], overrides=overrides)


COMMANDS = list(documented_commands())


def test_the_documents_show_commands_of_every_script():
    scripts = {script for _, script, _ in COMMANDS}
    assert scripts == set(CONFIG_OF_SCRIPT)
    assert len(COMMANDS) > 80


@pytest.mark.parametrize(("document", "script", "arguments"), COMMANDS,
                         ids=[f"{doc}:{script}:{i}" for i, (doc, script, _) in enumerate(COMMANDS)])
def test_a_documented_command_composes(document, script, arguments):
    # The README's multi-GPU line (trainer=ddp trainer.accelerator=gpu ... trainer.precision=bf16-mixed)
    # was refused by Hydra: no trainer config named precision.
    overrides = overrides_of(arguments)
    if script == "recommend":  # as the script reads them (recsys.cli.text_overrides)
        overrides = quoted_text_values(overrides, RECOMMEND_TEXT_KEYS)
    if script in SETTINGS_FROM_CHECKPOINT_OR_EXPORT:
        assert not any(sets_training_group(argument) for argument in overrides), (document, arguments)
    composed(script, overrides)


def test_the_multi_gpu_command_keeps_the_gpu_settings():
    cfg = composed("train", ["trainer=gpu", "trainer.strategy=ddp", "trainer.devices=8", "trainer.num_nodes=4"])
    trainer = cfg.trainer
    assert (trainer.accelerator, trainer.strategy, trainer.devices, trainer.num_nodes) == ("gpu", "ddp", 8, 4)
    assert (trainer.precision, trainer.deterministic) == ("bf16-mixed", "warn")
    assert composed("train", ["trainer=ddp"]).trainer.strategy == "ddp"
    assert composed("train", []).trainer.precision == "32-true"  # Lightning's default, named
