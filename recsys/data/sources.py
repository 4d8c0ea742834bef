"""Where a dataset's raw files are, and a clear error when they are not there."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from recsys.data.errors import DatasetNotFoundError

DATA_DIR_ENV = "RECSYS_DATA_DIR"


@dataclass(frozen=True)
class DatasetFiles:
    """The raw files of one dataset: a reviews file and, optionally, a metadata file.

    ``subdir`` is the dataset's folder under the data directory. A file named ``x.json.gz`` is
    also found as ``x.json`` (and the other way round).
    """

    name: str
    subdir: str
    reviews: str
    meta: str | None = None


@dataclass(frozen=True)
class LocatedFiles:
    """Paths of a dataset's raw files that exist on disk."""

    name: str
    reviews: Path
    meta: Path | None


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The data directory from config, else ``$RECSYS_DATA_DIR``, else ``./data``."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or "data"
    return Path(chosen).expanduser().resolve()


def _find(folder: Path, name: str) -> Path | None:
    candidates = [name]
    if name.endswith(".gz"):
        candidates.append(name[: -len(".gz")])
    else:
        candidates.append(name + ".gz")
    for candidate in candidates:
        path = folder / candidate
        if path.is_file():
            return path
    return None


def locate(files: DatasetFiles, data_dir: str | Path | None) -> LocatedFiles:
    """Find the raw files of ``files`` under the data directory, or raise
    :class:`DatasetNotFoundError` saying where it looked and how to get them."""
    root = resolve_data_dir(data_dir)
    folder = root / files.subdir
    expected = [files.reviews] + ([files.meta] if files.meta else [])
    reviews = _find(folder, files.reviews)
    meta = _find(folder, files.meta) if files.meta else None
    if reviews is None or (files.meta and meta is None):
        raise DatasetNotFoundError(files.name, folder, expected)
    return LocatedFiles(name=files.name, reviews=reviews, meta=meta)
