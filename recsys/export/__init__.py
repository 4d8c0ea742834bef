"""Export directories: writing a trained model for serving, and reading it back verified.

The names below are imported on first use, so that ``recsys.export.format`` (the error type and
format constants, which the command-line entry points need) does not load torch with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports them
    from recsys.export.format import FORMAT_VERSION, ExportError
    from recsys.export.reader import ExportBundle, load_export
    from recsys.export.writer import export_checkpoint, write_export

_HOMES = {
    "FORMAT_VERSION": "recsys.export.format",
    "ExportError": "recsys.export.format",
    "ExportBundle": "recsys.export.reader",
    "load_export": "recsys.export.reader",
    "export_checkpoint": "recsys.export.writer",
    "write_export": "recsys.export.writer",
}

__all__ = ["FORMAT_VERSION", "ExportBundle", "ExportError", "export_checkpoint", "load_export", "write_export"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
