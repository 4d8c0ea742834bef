"""Export directories: writing a trained model for serving, and reading it back verified.

The names below are imported on first use, so that ``recsys.export.format`` (the error type and
format constants, which the command-line entry points need) does not load torch with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "FORMAT_VERSION": "recsys.export.format",
    "ExportError": "recsys.export.format",
    "ExportBundle": "recsys.export.reader",
    "load_export": "recsys.export.reader",
    "export_checkpoint": "recsys.export.writer",
    "write_export": "recsys.export.writer",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
