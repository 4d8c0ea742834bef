"""Where a dataset's raw files are, and a clear error when they are not there."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from recsys.data.errors import AMAZON_HOW_TO_GET, DatasetNotFoundError
from recsys.data.fields import AMAZON_ITEM_FIELDS, AMAZON_REVIEW_FIELDS, ItemFields, ReviewFields

DATA_DIR_ENV = "RECSYS_DATA_DIR"


@dataclass(frozen=True)
class DatasetFiles:
    """The raw files of one dataset: a reviews file and, optionally, an item-metadata file.

    ``subdir`` is the dataset's folder under the data directory; ``reviews`` and ``meta`` are file
    names in it, or absolute paths. A file named ``x.json.gz`` is also found as ``x.json`` (and the
    other way round). The files are JSON lines, CSV / TSV or Parquet (by their names), and
    ``review_fields`` / ``item_fields`` say which of their fields hold what (the Amazon releases'
    names by default). ``how_to_get`` completes "How to get them:" when the files are missing.
    """

    name: str
    subdir: str
    reviews: str
    meta: str | None = None
    review_fields: ReviewFields = field(default=AMAZON_REVIEW_FIELDS)
    item_fields: ItemFields = field(default=AMAZON_ITEM_FIELDS)
    how_to_get: str = AMAZON_HOW_TO_GET

    def __post_init__(self) -> None:
        if not self.reviews:
            raise ValueError(
                f"data.dataset.reviews is not set for dataset '{self.name}': give the reviews file "
                "(JSON lines, CSV, TSV or Parquet), e.g. data.dataset.reviews=/path/to/reviews.csv"
            )


@dataclass(frozen=True)
class LocatedFiles:
    """Paths of a dataset's raw files that exist on disk, and how to read them."""

    name: str
    reviews: Path
    meta: Path | None
    review_fields: ReviewFields = field(default=AMAZON_REVIEW_FIELDS)
    item_fields: ItemFields = field(default=AMAZON_ITEM_FIELDS)


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The data directory from config, else ``$RECSYS_DATA_DIR``, else ``./data``."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or "data"
    return Path(chosen).expanduser().resolve()


def _find(folder: Path, name: str) -> Path | None:
    given = Path(name).expanduser()
    candidates = [given]
    if given.suffix == ".gz":
        candidates.append(given.with_suffix(""))
    else:
        candidates.append(given.with_name(given.name + ".gz"))
    for candidate in candidates:
        path = candidate if candidate.is_absolute() else folder / candidate
        if path.is_file():
            return path
    return None


def locate(files: DatasetFiles, data_dir: str | Path | None) -> LocatedFiles:
    """Find the raw files of ``files`` under the data directory, or raise
    :class:`DatasetNotFoundError` saying where it looked and how to get them."""
    root = resolve_data_dir(data_dir)
    folder = root / files.subdir
    reviews = _find(folder, files.reviews)
    meta = _find(folder, files.meta) if files.meta else None
    if reviews is None or (files.meta and meta is None):
        found = [(files.reviews, reviews)] + ([(files.meta, meta)] if files.meta else [])
        expected = [f"{name} ({'found' if path else 'missing'})" for name, path in found]
        relative = any(not Path(name).expanduser().is_absolute() for name, _ in found)
        raise DatasetNotFoundError(files.name, folder if relative else None, expected, files.how_to_get)
    return LocatedFiles(files.name, reviews, meta, files.review_fields, files.item_fields)
