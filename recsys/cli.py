"""Shared behaviour of the ``scripts/`` entry points."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from hydra.errors import InstantiationException
from omegaconf.errors import MissingMandatoryValue

from recsys.data.errors import DataFormatError, DatasetNotFoundError, SplitMismatchError
from recsys.export.format import ExportError
from recsys.serving.errors import UnknownIdError

log = logging.getLogger("recsys")
T = TypeVar("T")

# Library warnings that name nothing a user can change; pyproject.toml filters the same for the tests.
LIBRARY_NOISE = (
    # Raised inside pytorch_lightning (2.6) on torch 2.13 at every step.
    r".*isinstance\(treespec, LeafSpec\).*is deprecated",
    # Lightning, at fit start: frozen encoder layers are kept in eval mode on purpose (no dropout,
    # so that their output can be cached).
    r".*module\(s\) in eval mode",
)
# Loggers whose info lines report a library's own start-up, not the run: faiss's loader tells of
# each CPU build it tries ("Could not load library with AVX512 support due to: ModuleNotFoundError"
# reads as a failure where it is the expected fallback). Their warnings still show.
QUIET_LOGGERS = ("faiss.loader",)
# Lightning's info lines that advertise a product rather than report on the run.
LIGHTNING_TIPS_LOGGER = "pytorch_lightning.utilities.rank_zero"
LIGHTNING_TIP_PREFIX = "💡 Tip:"
LIGHTNING_DEVICE_PREFIXES = ("GPU available:", "TPU available:", "HPU available:")

# Errors whose message already tells the user what to do: no traceback needed.
USER_ERRORS = (
    DataFormatError, DatasetNotFoundError, SplitMismatchError, ExportError, UnknownIdError,
    FileNotFoundError, FileExistsError, ValueError,
)


class _ScriptHelp(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The script's docstring as written (its usage lines and what it measures), and each
    option's default after its help."""


def script_parser(doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of a benchmark script (those not configured through Hydra), whose
    ``--help`` shows the script's docstring ``doc`` and each option's default."""
    return argparse.ArgumentParser(description=doc, formatter_class=_ScriptHelp)


class LightningInfoFilter(logging.Filter):
    """Drops Lightning's advertising tips, and its device lines after their first showing: every
    Trainer prints them, and a run builds one to train and one for each checkpoint it tests apart."""

    def __init__(self) -> None:
        super().__init__()
        self._devices_shown: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith(LIGHTNING_TIP_PREFIX):
            return False
        if message.startswith(LIGHTNING_DEVICE_PREFIXES):
            if message in self._devices_shown:
                return False
            self._devices_shown.add(message)
        return True


@contextmanager
def quiet_library_noise() -> Iterator[None]:
    """Silence the libraries' :data:`LIBRARY_NOISE` warnings, the info lines of :data:`QUIET_LOGGERS`,
    Lightning's advertising tips and its repeated device lines inside the ``with`` block."""
    lightning_info = logging.getLogger(LIGHTNING_TIPS_LOGGER)
    info_filter = LightningInfoFilter()
    lightning_info.addFilter(info_filter)
    quiet = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        with warnings.catch_warnings():
            for message in LIBRARY_NOISE:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        lightning_info.removeFilter(info_filter)
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


# The config groups that shape a training run (conf/<group>/). Scripts that read these settings
# from a checkpoint or an export compose none of them, and Hydra would answer `data=magazine` with
# "No match in the defaults list ... use +data=magazine", whose `+` then composes a group the
# script never reads.
TRAINING_GROUPS = ("data", "model", "trainer", "logger", "callbacks", "experiment")


def sets_training_group(argument: str) -> bool:
    """Whether a command-line ``argument`` sets or removes a training group or a key in one
    (``data=magazine``, ``+model.text.trainable_layers=2``, ``~logger``)."""
    if argument.startswith("-"):
        return False
    return argument.lstrip("+~").split("=", 1)[0].split(".", 1)[0].split("@", 1)[0] in TRAINING_GROUPS


def settings_from(source: str) -> Callable[[Callable[[], T]], Callable[[], T]]:
    """Wrap a script's ``hydra.main`` so that an override of a :data:`TRAINING_GROUPS` group exits
    with status 2 and a line saying that the script takes those settings from its ``source`` (a
    checkpoint, an export), before Hydra composes anything."""

    def decorate(main: Callable[[], T]) -> Callable[[], T]:
        @wraps(main)
        def wrapper() -> T:
            script = os.path.basename(sys.argv[0])
            for argument in sys.argv[1:]:
                if sets_training_group(argument):
                    print(f"{argument!r} does not apply here: {script} takes its data, model and training "
                          f"settings from the {source} it is given. What it does take: "
                          f"python scripts/{script} --help", file=sys.stderr)
                    sys.exit(2)
            return main()

        return wrapper

    return decorate


def hydra_quoted(text: str) -> str:
    """``text`` as a quoted Hydra override value that reads back as ``text`` exactly: OmegaConf's
    ``${`` escaped (with the backslashes before it), then the backslashes before a quote or at the
    end doubled and the quotes escaped, as Hydra's grammar reads a quoted value."""
    text = re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", text)
    text = re.sub(r"(\\+)(?='|\Z)", lambda m: m.group(1) * 2, text).replace("'", "\\'")
    return f"'{text}'"


def override_syntax_error(argument: str) -> str | None:
    """What is wrong with a command-line override that Hydra's grammar cannot read, and the same
    override quoted (:func:`hydra_quoted`), which it can; None for one it reads. Hydra's own answer
    (LexerNoViableAltException and a caret) says where, not what to do."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        OverridesParser.create().parse_overrides([argument])
        return None
    except HydraException as err:
        lines = str(err).splitlines()
    lexer = "LexerNoViableAltException: "
    if lines[0].startswith(lexer) and len(lines) > 1 and "^" in lines[1]:  # a caret under the character
        position = lines[1].index("^") - len(lexer)
        reason = f"{argument[position]!r} at character {position + 1}" if 0 <= position < len(argument) else lines[0]
    else:
        reason = next((line.strip() for line in lines if line.strip() and not line.startswith(
            ("Error parsing override", "See "))), lines[0])
    key, _, value = argument.partition("=")
    quoted = f"{key}={hydra_quoted(value)}"
    shell = f' (in a shell: "{quoted}")' if not re.search(r'["$`\\!]', quoted) else ""
    return (f"Cannot read the override {argument!r} ({reason}): outside quotes, Hydra reads accents, commas, "
            f"brackets, parentheses and quotes in a value as its own syntax. A value that is text (a path, a "
            f"query) wants quotes: {quoted}{shell}")


def readable_overrides(main: Callable[[], T]) -> Callable[[], T]:
    """Wrap a script's ``hydra.main`` so that an override Hydra's grammar cannot read exits with
    status 2 and :func:`override_syntax_error`'s line, before Hydra composes anything."""

    @wraps(main)
    def wrapper() -> T:
        for argument in sys.argv[1:]:
            if "=" in argument and not argument.startswith("-"):  # an override, not a flag or its value
                error = override_syntax_error(argument)
                if error:
                    print(error, file=sys.stderr)
                    sys.exit(2)
        return main()

    return wrapper


# The keys of scripts/recommend.py whose values are free text, ids or paths, read as given.
RECOMMEND_TEXT_KEYS = ("user", "query", "users", "out")


def quoted_text_values(arguments: list[str], keys: tuple[str, ...]) -> list[str]:
    """``arguments`` with the values of ``keys`` quoted by :func:`hydra_quoted`, so that Hydra reads
    them as the text given: its grammar refuses an unquoted ``query=café`` or ``query=bright, not
    dull`` (LexerNoViableAltException), and reads ``user=007`` as the number 7. A value that is
    already quoted, or ``null``, is left to Hydra."""
    quoted = []
    for argument in arguments:
        key, equals, value = argument.partition("=")
        enclosed = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
        if equals and key.lstrip("+") in keys and value != "null" and not enclosed:
            argument = f"{key}={hydra_quoted(value)}"
        quoted.append(argument)
    return quoted


def text_overrides(*keys: str) -> Callable[[Callable[[], T]], Callable[[], T]]:
    """Wrap a script's ``hydra.main`` so that the command-line values of ``keys`` are read as the
    text given (:func:`quoted_text_values`)."""

    def decorate(main: Callable[[], T]) -> Callable[[], T]:
        @wraps(main)
        def wrapper() -> T:
            sys.argv[1:] = quoted_text_values(sys.argv[1:], keys)
            return main()

        return wrapper

    return decorate


def exit_status(signalled: signal.Signals) -> int:
    """What a shell reports for a process ended by the signal: 128 + its number."""
    return 128 + signalled


def signal_label(signalled: signal.Signals) -> str:
    """How a message names the signal: Ctrl-C for SIGINT, which is how users send it."""
    return "Ctrl-C (SIGINT)" if signalled == signal.SIGINT else signalled.name


def lightning_interruption(stopped: SystemExit) -> signal.Signals | None:
    """The signal behind Lightning's way out of a run it stopped: ``SIGTERMException`` (status 0)
    for SIGTERM, ``sys.exit(1)`` while handling KeyboardInterrupt for Ctrl-C; None for any other exit."""
    # Looked up, not imported: the scripts answer --help before torch loads, and a Lightning that
    # was never loaded raised nothing.
    exceptions = sys.modules.get("pytorch_lightning.utilities.exceptions")
    if exceptions is not None and isinstance(stopped, exceptions.SIGTERMException):
        return signal.SIGTERM
    if stopped.code == 1 and isinstance(stopped.__context__, KeyboardInterrupt):
        return signal.SIGINT
    return None


def exit_on_user_error(main: Callable[..., T]) -> Callable[..., T]:
    """Print the message of an error the user can act on and exit with status 2, instead of a
    traceback (``RECSYS_DEBUG=1`` shows it), and end a Ctrl-C or a SIGTERM (also where Lightning
    caught it) with one line and the shell's status for it; any other exception propagates
    unchanged. Also silences the libraries' :data:`LIBRARY_NOISE` while ``main`` runs."""

    @wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            with quiet_library_noise():
                return main(*args, **kwargs)
        except (KeyboardInterrupt, SystemExit) as stopped:
            signalled = signal.SIGINT if isinstance(stopped, KeyboardInterrupt) else lightning_interruption(stopped)
            if signalled is None or os.environ.get("RECSYS_DEBUG"):
                raise
            log.error("Stopped by %s", signal_label(signalled))
            sys.exit(exit_status(signalled))
        except MissingMandatoryValue as err:
            if os.environ.get("RECSYS_DEBUG"):
                raise
            key = err.full_key or "a setting"
            usage = (sys.modules[main.__module__].__doc__ or "").strip()
            log.error("%s has no value and this command needs one: add %s=... to the command line%s",
                      key, key, f"\n\n{usage}" if usage else "")
            sys.exit(2)
        except (*USER_ERRORS, InstantiationException) as err:
            # Hydra's instantiate wraps what a config's target raises (a bad override's ValueError)
            # in its own error, whose message is the repr of the cause beside the target's path.
            cause: BaseException = err
            while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
                cause = cause.__cause__
            if not isinstance(cause, USER_ERRORS) or os.environ.get("RECSYS_DEBUG"):
                raise
            log.error("%s\n(set RECSYS_DEBUG=1 to see the traceback)", cause)
            sys.exit(2)

    return wrapper
