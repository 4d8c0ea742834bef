"""Command-line options of the benchmark drivers: ``prefix.key=value`` options beside ``train`` overrides."""

from __future__ import annotations

from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from recsys.benchmarking.harness import compose_training


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
    try:
        compose_training(overrides, work)
    except (HydraException, OmegaConfBaseException) as err:
        raise ValueError(f"bad override: {err}") from None
