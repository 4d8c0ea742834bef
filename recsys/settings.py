"""Checks of config values read by the entry points, each error naming the override to change."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def is_whole_number(value: object) -> bool:
    """Whether ``value`` is an int (a YAML ``true`` is a bool, which Python counts as an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


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
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool):
        return value
    raise ValueError(f"{key}={value!r} is not allowed: give true or false")
