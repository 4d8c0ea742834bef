"""Config values read by the entry points: checks whose errors name the override to change, and the
config as plain data."""

from __future__ import annotations

from typing import Any, Literal, TypeGuard, cast, overload

from omegaconf import DictConfig, OmegaConf


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """``cfg`` resolved into plain dicts and lists: for loggers, manifests and JSON."""
    return cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))


def is_whole_number(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an int (a YAML ``true`` is a bool, which Python counts as an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is an int or a float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@overload
def whole_number_setting(cfg: DictConfig, key: str, least: int | None = ..., example: int = ...,
                         required: Literal[False] = ...) -> int | None: ...


@overload
def whole_number_setting(cfg: DictConfig, key: str, least: int | None = ..., example: int = ..., *,
                         required: Literal[True]) -> int: ...


def whole_number_setting(cfg: DictConfig, key: str, least: int | None = None, example: int = 6,
                         required: bool = False) -> int | None:
    """The integer at ``key`` of ``cfg`` (None where unset, unless ``required``), or a ValueError
    that names the override (also when it is below ``least``) with an ``example`` value."""
    value = OmegaConf.select(cfg, key)
    if value is None and not required:
        return None
    if is_whole_number(value) and (least is None or value >= least):
        return value
    bound = f" >= {least}" if least is not None else ""
    raise ValueError(f"{key}={value!r} is not allowed: give a whole number{bound}, e.g. {key}={example}")


def flag_setting(cfg: DictConfig, key: str) -> bool:
    """The true/false value at ``key`` of ``cfg``, or a ValueError that names the override."""
    return checked_flag(key, OmegaConf.select(cfg, key))


def checked_flag(key: str, value: object) -> bool:
    """``value`` if it is true or false, else a ValueError that names the override ``key``.

    A string such as ``maybe`` would otherwise be taken as true without a word."""
    if isinstance(value, bool):
        return value
    raise ValueError(f"{key}={value!r} is not allowed: give true or false")


def checked_choice(key: str, value: object, choices: tuple[str, ...] | list[str]) -> str:
    """``value`` if it is one of ``choices``, else a ValueError that names the override and lists them."""
    if isinstance(value, str) and value in choices:
        return value
    raise ValueError(f"{key}={value!r} is not allowed; use one of: {', '.join(choices)}")


def _bounds(least: float | None, above: float | None, most: float | None, below: float | None) -> str:
    """Words for a range: ``in [0, 1)``, ``>= 0``, ``> 0`` or ``<= 1``."""
    low = (f"[{least:g}", least) if least is not None else (f"({above:g}", above) if above is not None else None
    high = (f"{most:g}]", most) if most is not None else (f"{below:g})", below) if below is not None else None
    if low and high:
        return f" in {low[0]}, {high[0]}"
    if low:
        return f" {'>=' if least is not None else '>'} {low[1]:g}"
    if high:
        return f" {'<=' if most is not None else '<'} {high[1]:g}"
    return ""


def checked_number(key: str, value: object, *, least: float | None = None, above: float | None = None,
                   most: float | None = None, below: float | None = None, note: str = "") -> float:
    """``value`` as a float if it is a number within the bounds (``least`` <= value, ``above`` <
    value, value <= ``most``, value < ``below``; each optional), else a ValueError that names the
    override ``key`` and the range allowed, followed by ``note`` (e.g. ``(0 = off)``)."""
    if is_number(value) and all((
        least is None or value >= least, above is None or value > above,
        most is None or value <= most, below is None or value < below,
    )):
        return float(value)
    suffix = f" {note}" if note else ""
    raise ValueError(f"{key}={value!r} is not allowed: give a number{_bounds(least, above, most, below)}{suffix}")


def checked_whole_number(key: str, value: object, *, least: int | None = None, most: int | None = None,
                         note: str = "") -> int:
    """``value`` if it is a whole number in [``least``, ``most``] (each optional), else a
    ValueError that names the override ``key`` and the range allowed, followed by ``note``."""
    if is_whole_number(value) and (least is None or value >= least) and (most is None or value <= most):
        return value
    suffix = f" {note}" if note else ""
    raise ValueError(f"{key}={value!r} is not allowed: give a whole number{_bounds(least, None, most, None)}{suffix}")
