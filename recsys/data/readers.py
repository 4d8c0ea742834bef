"""Readers for the Amazon review releases (2014 and 2018), reviews and item metadata.

Both releases store one object per line, in ``.json`` or ``.json.gz`` files. Reviews use
``reviewerID, asin, overall, reviewText, summary, unixReviewTime``; metadata uses
``asin, title, description, brand`` and ``category`` (2018) or ``categories`` (2014). The 2014
metadata files are Python literals rather than strict JSON, so a line that is not JSON but
starts with ``{'`` is read with :func:`ast.literal_eval` (never ``eval``).
"""

from __future__ import annotations

import ast
import gzip
import html
import json
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.data.schema import INTERACTION_DTYPES, ITEM_DTYPES
from recsys.data.validation import BadLine, BadLinePolicy, ReadReport

HTML_DEBRIS = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>?|class=\"")
HTML_TAG = re.compile(r"<[^>]+>")
WHITESPACE = re.compile(r"\s+")
# Far above any real review (the longest Musical Instruments line is a few kB); a longer line is
# a broken file, and reading it whole could exhaust memory.
MAX_LINE_BYTES = 1 << 20
_DRAIN_CHUNK = 1 << 20


@dataclass
class ReadResult:
    """A table and the report of how each line of its file was handled."""

    table: pd.DataFrame
    report: ReadReport


def iter_raw_lines(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """Yield ``(line_number, raw bytes)`` of a ``.json`` or ``.json.gz`` file, 1-based.

    A line longer than ``max_line_bytes`` is yielded as ``None`` (its bytes are read in chunks and
    dropped, never held whole). A gzip stream that ends early raises :class:`EOFError` (or a
    zlib/gzip error) from here, after every complete line before the damage has been yielded.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        number = 0
        while raw := handle.readline(max_line_bytes + 1):
            number += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):
                    raw = handle.readline(_DRAIN_CHUNK)
                yield number, None
            else:
                yield number, raw


def _decode_object(raw: bytes) -> dict[str, Any]:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadLine("non_utf8", f"invalid UTF-8 byte at offset {err.start}") from None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        obj = _python_literal(line)
        if obj is None:
            raise BadLine("invalid_json", f"{err.msg} at column {err.colno}") from None
    if not isinstance(obj, dict):
        raise BadLine("not_an_object", f"found a JSON {type(obj).__name__}")
    return obj


def _python_literal(line: str) -> dict[str, Any] | None:
    """Parse a 2014-style metadata line (a Python dict literal), or return None."""
    if not line.lstrip().startswith("{'"):
        return None
    try:
        value = ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _required_id(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        raise BadLine("missing_id", f"'{key}' is missing")
    if not isinstance(value, str):
        raise BadLine("wrong_type", f"'{key}' should be a string, found {type(value).__name__}")
    value = value.strip()
    if not value:
        raise BadLine("missing_id", f"'{key}' is empty")
    return value


def _optional_text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadLine("wrong_type", f"'{key}' should be a string, found {type(value).__name__}")
    return value.strip()


def _rating(obj: dict[str, Any]) -> float:
    if "overall" not in obj:
        raise BadLine("missing_field", "'overall' (the star rating) is missing")
    value = obj["overall"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadLine("wrong_type", f"'overall' should be a number, found {value!r}")
    if math.isnan(value) or not 1.0 <= value <= 5.0:
        raise BadLine("rating_out_of_range", f"'overall' is {value!r}, expected 1..5")
    return float(value)


def _timestamp(obj: dict[str, Any]) -> int:
    value = obj.get("unixReviewTime")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise BadLine("wrong_type", f"'unixReviewTime' should be an integer, found {value!r}")
        return int(value)
    text = obj.get("reviewTime")
    if isinstance(text, str):
        try:
            moment = datetime.strptime(text.strip(), "%m %d, %Y").replace(tzinfo=timezone.utc)
        except ValueError:
            raise BadLine("wrong_type", f"'reviewTime' {text!r} is not 'MM DD, YYYY'") from None
        return int(moment.timestamp())
    raise BadLine("missing_field", "neither 'unixReviewTime' nor 'reviewTime' is present")


def parse_review(raw: bytes) -> tuple[str, str, float, str, str, int]:
    """Parse one review line into ``(user_id, item_id, rating, text, summary, timestamp)``.

    Raises :class:`BadLine` with a reason from ``BAD_LINE_REASONS`` when the line is unusable.
    """
    obj = _decode_object(raw)
    user_id, item_id, rating = _required_id(obj, "reviewerID"), _required_id(obj, "asin"), _rating(obj)
    text, summary = _optional_text(obj, "reviewText"), _optional_text(obj, "summary")
    if not text and not summary:
        raise BadLine("empty_text", "'reviewText' and 'summary' are both missing, empty or whitespace")
    return user_id, item_id, rating, text, summary, _timestamp(obj)


def clean_markup(text: str) -> str:
    """Unescape HTML entities, drop tags and squeeze whitespace."""
    return WHITESPACE.sub(" ", HTML_TAG.sub(" ", html.unescape(text))).strip()


def _text_or_list(obj: dict[str, Any], key: str, joiner: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return clean_markup(value)
    if isinstance(value, list):
        parts: list[str] = []
        for element in value:
            # 2014 metadata nests category paths one level deeper than 2018's.
            elements = element if isinstance(element, list) else [element]
            for part in elements:
                if not isinstance(part, str):
                    raise BadLine("wrong_type", f"'{key}' should hold strings, found {part!r}")
                cleaned = clean_markup(part)
                if cleaned and cleaned not in parts:
                    parts.append(cleaned)
        return joiner.join(parts)
    raise BadLine("wrong_type", f"'{key}' should be a string or a list, found {type(value).__name__}")


def parse_item(raw: bytes) -> tuple[str, str, str, str, str]:
    """Parse one metadata line into ``(item_id, title, description, categories, brand)``.

    Titles that are HTML debris (a known defect of some 2018 categories) become empty.
    """
    obj = _decode_object(raw)
    item_id = _required_id(obj, "asin")
    title = _optional_text(obj, "title")
    if HTML_DEBRIS.search(title):
        title = ""
    categories_key = "category" if "category" in obj else "categories"
    return (
        item_id,
        clean_markup(title),
        _text_or_list(obj, "description", " "),
        _text_or_list(obj, categories_key, " > "),
        clean_markup(_optional_text(obj, "brand")),
    )


def _read_lines(
    path: Path, parse, policy: BadLinePolicy, max_line_bytes: int
) -> tuple[list[tuple], list[int], ReadReport]:
    report = ReadReport(path=str(path))
    rows: list[tuple] = []
    line_numbers: list[int] = []
    number = 0
    try:
        for number, raw in iter_raw_lines(path, max_line_bytes):
            report.lines_read += 1
            if raw is None:
                report.record_bad_line(number, BadLine("line_too_long", f"over {max_line_bytes:,} bytes"), policy)
                continue
            if not raw.strip():
                report.blank_lines += 1
                continue
            try:
                rows.append(parse(raw))
                line_numbers.append(number)
            except BadLine as bad:
                report.record_bad_line(number, bad, policy)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        report.lines_read += 1
        report.record_bad_line(number + 1, BadLine("truncated_file", str(err) or type(err).__name__), policy)
    return rows, line_numbers, report


def read_reviews(
    path: Path | str,
    on_bad_line: BadLinePolicy | str = BadLinePolicy.ERROR,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> ReadResult:
    """Read a reviews file into the interactions table (see :mod:`recsys.data.schema`).

    Repeated (user, item) pairs keep the latest review (by timestamp, then by line order), and
    the number dropped is in ``report.duplicates_dropped``. Row order follows the file.
    """
    path = Path(path)
    policy = BadLinePolicy.parse(on_bad_line)
    rows, line_numbers, report = _read_lines(path, parse_review, policy, max_line_bytes)
    columns = list(INTERACTION_DTYPES)
    table = pd.DataFrame(rows, columns=columns).astype(INTERACTION_DTYPES)
    table.index = pd.Index(line_numbers, name="line")
    latest = table.sort_values(["timestamp"], kind="stable").drop_duplicates(
        ["user_id", "item_id"], keep="last"
    )
    report.duplicates_dropped = len(table) - len(latest)
    table = latest.sort_index().reset_index(drop=True)
    report.rows_kept = len(table)
    return ReadResult(table=table, report=report)


def read_items(
    path: Path | str,
    on_bad_line: BadLinePolicy | str = BadLinePolicy.ERROR,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> ReadResult:
    """Read a metadata file into the items table; repeated item ids keep their first row."""
    path = Path(path)
    policy = BadLinePolicy.parse(on_bad_line)
    rows, _, report = _read_lines(path, parse_item, policy, max_line_bytes)
    table = pd.DataFrame(rows, columns=list(ITEM_DTYPES)).astype(ITEM_DTYPES)
    unique = table.drop_duplicates("item_id", keep="first").reset_index(drop=True)
    report.duplicates_dropped = len(table) - len(unique)
    report.rows_kept = len(unique)
    return ReadResult(table=unique, report=report)
