"""Command-line options of the benchmark drivers: ``prefix.key=value`` options beside ``train`` overrides."""

from __future__ import annotations

import logging
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from recsys.benchmarking.harness import compose_training
from recsys.cli import override_syntax_error


def split_arguments(arguments: list[str], prefix: str, defaults: dict[str, str], optional: set[str],
                    usage: str) -> tuple[dict[str, str], list[str]]:
    """Split ``key=value`` arguments into the driver's options (keys starting ``prefix.``: those of
    ``defaults`` or ``optional``) and the rest, ``train`` overrides. ``usage`` names the command
    whose ``--help`` explains them."""
    options, overrides = dict(defaults), []
    allowed = set(defaults) | optional
    for argument in arguments:
        key, sep, value = argument.partition("=")
        if not sep:
            raise ValueError(f"{argument!r} is not key=value (see: {usage} --help)")
        if key.startswith(f"{prefix}."):
            if key not in allowed:
                raise ValueError(f"{key} is not an option of {usage}; use one of: {', '.join(sorted(allowed))}")
            options[key] = value
        else:
            overrides.append(argument)
    return options, overrides


def integer_option(options: dict[str, str], key: str) -> int:
    """The integer value of the option ``key``, or a ValueError that names it."""
    try:
        return int(options[key])
    except ValueError:
        raise ValueError(f"{key}={options[key]!r} is not an integer") from None


def check_overrides(overrides: list[str], work: Path) -> None:
    """Compose the ``train`` config of ``overrides`` so that a bad one fails before any run trains,
    as a ValueError that says so."""
    for argument in overrides:
        error = override_syntax_error(argument)
        if error:
            raise ValueError(error)
    try:
        compose_training(overrides, work)
    except (HydraException, OmegaConfBaseException) as err:
        raise ValueError(f"bad override: {err}") from None


def driver_folders(options: dict[str, str], prefix: str, driver: str) -> tuple[Path, Path]:
    """``(out, work)``: the report folder (``prefix.out``) and the runs' folder (``prefix.work``),
    each by default under ``<outputs>/<driver>/<time>`` (``RECSYS_OUTPUT_DIR``, else ``outputs``, as
    ``paths.output_dir``); the runs' checkpoints and exports never go to ``prefix.out`` unasked,
    which may be a folder of reports kept in git."""
    run_dir = Path(os.environ.get("RECSYS_OUTPUT_DIR") or "outputs", driver, time.strftime("%Y-%m-%d_%H-%M-%S"))
    return Path(options.get(f"{prefix}.out") or run_dir), Path(options.get(f"{prefix}.work") or run_dir / "runs")


@dataclass(frozen=True)
class DriverArguments:
    """What a benchmark driver's command line asks for: its integer options by key (e.g.
    ``cv.folds``), the ``train`` overrides, the report and runs' folders, the command as typed
    (for the report) and the W&B group of its runs (``<driver>/<report folder's name>``)."""

    numbers: dict[str, int]
    overrides: list[str]
    out: Path
    work: Path
    command: str
    group: str


def start_driver(arguments: list[str], doc: str, driver: str, prefix: str,
                 integers: dict[str, int]) -> DriverArguments | None:
    """Start ``scripts/<driver>.py``: print its ``doc`` and return None when ``arguments`` ask for
    help; else turn on INFO logging and parse them: options ``prefix.<key>`` (the integer ones of
    ``integers``, with their defaults, and ``prefix.out`` / ``prefix.work``, see
    :func:`driver_folders`), every other ``key=value`` a ``train`` override, checked by composing
    the config before anything trains. Errors are ValueErrors that say what is allowed."""
    if arguments and arguments[0] in ("-h", "--help"):
        print(doc)
        return None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    usage = f"python scripts/{driver}.py"
    options, overrides = split_arguments(arguments, prefix, {key: str(value) for key, value in integers.items()},
                                         {f"{prefix}.out", f"{prefix}.work"}, usage)
    numbers = {key: integer_option(options, key) for key in integers}
    out, work = driver_folders(options, prefix, driver)
    check_overrides(overrides, work)
    return DriverArguments(numbers, overrides, out, work, " ".join([usage, *map(shlex.quote, arguments)]),
                           f"{driver}/{out.name}")
