"""Read a dataset's raw files into tables once, and keep the parsed tables on disk."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recsys.atomic import atomic_write
from recsys.cache_files import UNREADABLE, discard_unreadable
from recsys.data.errors import EmptyDatasetError
from recsys.data.readers import read_items, read_reviews
from recsys.data.schema import INTERACTION_DTYPES, ITEM_DTYPES
from recsys.data.sources import LocatedFiles
from recsys.data.validation import BadLinePolicy, ReadReport
from recsys.file_digest import file_sha256

log = logging.getLogger(__name__)

# Bump when the readers change what they produce, so old parsed tables are not reused.
READER_VERSION = 2


@dataclass
class LoadedTables:
    """The interactions table, the items table (None without a metadata file) and the reports."""

    interactions: pd.DataFrame
    items: pd.DataFrame | None
    reports: list[ReadReport]
    cache_dir: Path


def tables_cache_dir(files: LocatedFiles, policy: BadLinePolicy, cache_root: Path) -> Path:
    """``cache_root/<dataset>/<hash of raw bytes, field mappings, policy and reader version>``."""
    digest = hashlib.sha256(f"v{READER_VERSION}|{policy.value}".encode())
    digest.update(files.review_fields.key().encode())
    if files.meta is not None:
        digest.update(files.item_fields.key().encode())
    for path in (files.reviews, files.meta):
        if path is not None:
            digest.update(file_sha256(path).encode())
    return Path(cache_root) / files.name / digest.hexdigest()[:16]


def load_tables(files: LocatedFiles, on_bad_line: BadLinePolicy | str, cache_root: Path | str) -> LoadedTables:
    """Parse the raw files (or read the parsed tables kept from an earlier run).

    Items are limited to those that have at least one review; the number of metadata rows for
    items without reviews is logged and kept in the report (``rows_unused``). A reviews file
    with no usable row raises :class:`EmptyDatasetError`.
    """
    policy = BadLinePolicy.parse(on_bad_line)
    directory = tables_cache_dir(files, policy, Path(cache_root))
    interactions_path = directory / "interactions.parquet"
    items_path = directory / "items.parquet"
    reports_path = directory / "read_reports.json"
    if interactions_path.exists() and reports_path.exists():
        try:
            interactions = pd.read_parquet(interactions_path).astype(INTERACTION_DTYPES)
            items = pd.read_parquet(items_path).astype(ITEM_DTYPES) if items_path.exists() else None
            reports = [ReadReport.from_dict(r) for r in json.loads(reports_path.read_text())]
        except UNREADABLE as error:
            discard_unreadable([interactions_path, items_path, reports_path], error)
        else:
            log.info("Read parsed tables from %s", directory)
            for report in reports:
                report.warn_absent_fields()
            return LoadedTables(interactions, items, reports, directory)

    reviews = read_reviews(files.reviews, policy, fields=files.review_fields)
    reviews.report.log_summary()
    if reviews.report.rows_kept == 0:
        raise EmptyDatasetError(files.reviews, reviews.report.lines_read, reviews.report.rows_skipped)
    reports = [reviews.report]
    items = None
    if files.meta is not None:
        meta = read_items(files.meta, policy, fields=files.item_fields)
        reviewed = meta.table["item_id"].isin(reviews.table["item_id"])
        meta.report.rows_unused = int((~reviewed).sum())
        meta.report.log_summary()
        reports.append(meta.report)
        log.info(
            "%s: %d items have metadata; %d metadata rows are for items without reviews and are not used",
            files.meta.name, int(reviewed.sum()), int((~reviewed).sum()),
        )
        items = meta.table[reviewed].reset_index(drop=True)

    atomic_write(interactions_path, lambda p: reviews.table.to_parquet(p, index=False))
    if items is not None:
        atomic_write(items_path, lambda p: items.to_parquet(p, index=False))
    # The reports go last: their presence marks a complete cache entry.
    atomic_write(reports_path, lambda p: p.write_text(json.dumps([r.to_dict() for r in reports], indent=2)))
    return LoadedTables(reviews.table, items, reports, directory)
