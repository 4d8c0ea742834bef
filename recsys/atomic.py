"""Write a file so that readers see the old file or the complete new one, never a partial one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path | str, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)`` then rename the result onto ``path``.

    The temporary name carries the process id, so that processes filling the same cache at once
    (the ranks of a distributed run) never write into one file; the last rename wins, and every
    rename puts a complete file in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        write(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path
