"""Read a reviews file and an item-metadata file into recsys' two tables.

Files are JSON lines, CSV / TSV or Parquet (:mod:`recsys.data.records`); which field holds which
column is a :class:`~recsys.data.fields.ReviewFields` / :class:`~recsys.data.fields.ItemFields`
mapping, by default the Amazon releases' (reviews: ``reviewerID, asin, overall, reviewText,
summary, unixReviewTime`` or ``reviewTime``; metadata: ``asin, title, description, brand`` and
``category`` (2018) or ``categories`` (2014)).
"""

from __future__ import annotations

import difflib
import gzip
import html
import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.data.errors import ON_BAD_LINE_SETTING
from recsys.data.fields import (
    AMAZON_ITEM_FIELDS,
    AMAZON_REVIEW_FIELDS,
    ISO_DATE,
    ItemFields,
    ReviewFields,
    settings_naming,
)
from recsys.data.records import MAX_LINE_BYTES, iter_records
from recsys.data.schema import INTERACTION_DTYPES, ITEM_DTYPES
from recsys.data.validation import BadLine, BadLinePolicy, ReadReport

HTML_DEBRIS = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>?|class=\"")
HTML_TAG = re.compile(r"<[^>]+>")
WHITESPACE = re.compile(r"\s+")
MAX_FIELD_NAMES_SHOWN = 12


@dataclass
class ReadResult:
    """A table and the report of how each line of its file was handled."""

    table: pd.DataFrame
    report: ReadReport


def _required_id(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        raise BadLine("missing_id", f"'{key}' is missing", missing=(key,))
    # Whole-number ids (common in exported tables) are read as their decimal text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise BadLine("wrong_type", f"'{key}' should be a string, found {type(value).__name__}")
    value = value.strip()
    if not value:
        raise BadLine("missing_id", f"'{key}' is empty")
    return value


def _optional_text(obj: dict[str, Any], key: str | None) -> str:
    value = obj.get(key) if key else None
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadLine("wrong_type", f"'{key}' should be a string, found {type(value).__name__}")
    return value.strip()


def _rating(obj: dict[str, Any], fields: ReviewFields) -> float:
    key = fields.rating
    if key not in obj:
        raise BadLine("missing_field", f"'{key}' (the star rating) is missing", missing=(key,))
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadLine("wrong_type", f"'{key}' should be a number, found {value!r}")
    if math.isnan(value) or not fields.rating_min <= value <= fields.rating_max:
        expected = f"{fields.rating_min:g}..{fields.rating_max:g}"
        raise BadLine("rating_out_of_range", f"'{key}' is {value!r}, expected {expected}")
    return float(fields.to_stars(value))


def _timestamp(obj: dict[str, Any], fields: ReviewFields) -> int:
    if fields.timestamp is None and fields.date is None:
        return 0
    value = obj.get(fields.timestamp) if fields.timestamp else None
    if value is not None:
        if isinstance(value, datetime):  # Parquet timestamp columns
            return int(_as_utc(value).timestamp())
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise BadLine("wrong_type", f"'{fields.timestamp}' should be an integer (unix seconds), found {value!r}")
        return int(value)
    text = obj.get(fields.date) if fields.date else None
    if isinstance(text, datetime):
        return int(_as_utc(text).timestamp())
    if isinstance(text, str):
        return _parse_date(text, fields)
    names = tuple(name for name in (fields.timestamp, fields.date) if name)
    present = " nor ".join(f"'{name}'" for name in names)
    raise BadLine(
        "missing_field", f"neither {present} is present" if " nor " in present else f"{present} is missing", names
    )


def _parse_date(text: str, fields: ReviewFields) -> int:
    try:
        if fields.date_format == ISO_DATE:
            moment = datetime.fromisoformat(text.strip())
        else:
            moment = datetime.strptime(text.strip(), fields.date_format)
    except ValueError:
        wanted = "an ISO 8601 date" if fields.date_format == ISO_DATE else f"in the format {fields.date_format!r}"
        raise BadLine("wrong_type", f"'{fields.date}' {text!r} is not {wanted}") from None
    return int(_as_utc(moment).timestamp())


def _as_utc(moment: datetime) -> datetime:
    """A date without a zone is taken as UTC, so that a split does not depend on the machine's zone."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def parse_review(
    obj: dict[str, Any], fields: ReviewFields = AMAZON_REVIEW_FIELDS
) -> tuple[str, str, float, str, str, int]:
    """Parse one review record into ``(user_id, item_id, rating, text, summary, timestamp)``.

    Raises :class:`BadLine` with a reason from ``BAD_LINE_REASONS`` when the record is unusable.
    """
    user_id, item_id = _required_id(obj, fields.user), _required_id(obj, fields.item)
    rating = _rating(obj, fields)
    text, summary = _optional_text(obj, fields.text), _optional_text(obj, fields.summary)
    if not text and not summary:
        named = tuple(name for name in (fields.text, fields.summary) if name)
        names = " and ".join(f"'{name}'" for name in named)
        detail = f"{names} {'are both' if ' and ' in names else 'is'} missing, empty or whitespace"
        if not fields.summary:  # a review title, where the file has one, would give this record its text
            detail += (f"; if the file has a second text (a review title), map it with {fields.setting}.summary="
                       "<its name>: it is read where the text is empty")
        raise BadLine("empty_text", detail, missing=tuple(name for name in named if name not in obj))
    return user_id, item_id, rating, text, summary, _timestamp(obj, fields)


def clean_markup(text: str) -> str:
    """Unescape HTML entities, drop tags and squeeze whitespace."""
    return WHITESPACE.sub(" ", HTML_TAG.sub(" ", html.unescape(text))).strip()


def _text_or_list(obj: dict[str, Any], key: str | None, joiner: str) -> str:
    value = obj.get(key) if key else None
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


def parse_item(obj: dict[str, Any], fields: ItemFields = AMAZON_ITEM_FIELDS) -> tuple[str, str, str, str, str]:
    """Parse one metadata record into ``(item_id, title, description, categories, brand)``.

    Titles are cleaned of markup; one that is HTML debris (a cut-off tag, a known defect of some
    2018 Amazon categories) becomes empty.
    """
    item_id = _required_id(obj, fields.item)
    title = clean_markup(_optional_text(obj, fields.title))
    if HTML_DEBRIS.search(title):  # markup left after cleaning is a cut-off tag, not a title
        title = ""
    categories_key = next((name for name in fields.categories if name in obj), None)
    return (
        item_id,
        title,
        _text_or_list(obj, fields.description, " "),
        _text_or_list(obj, categories_key, " > "),
        clean_markup(_optional_text(obj, fields.brand)),
    )


def _read_records(
    path: Path, parse: Callable[[dict[str, Any]], tuple], policy: BadLinePolicy, max_line_bytes: int,
    fields: ReviewFields | ItemFields, policy_setting: str = ON_BAD_LINE_SETTING,
) -> tuple[list[tuple], list[int], ReadReport]:
    report = ReadReport(path=str(path))
    rows: list[tuple] = []
    line_numbers: list[int] = []
    number = 0
    unseen = dict(fields.optional)  # mapped fields that no record has held so far, by role
    file_fields: set[str] = set()
    try:
        for number, record in iter_records(path, max_line_bytes, fields.numeric):
            report.lines_read += 1
            if record is None:
                report.blank_lines += 1
                continue
            if unseen and isinstance(record, dict):
                file_fields.update(str(name) for name in record)
                unseen = {role: names for role, names in unseen.items() if file_fields.isdisjoint(names)}
            try:
                if isinstance(record, BadLine):
                    raise record
                rows.append(parse(record))
                line_numbers.append(number)
            except BadLine as bad:
                report.record_bad_line(number, _with_field_names(bad, record, fields), policy, policy_setting)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        report.lines_read += 1
        report.record_bad_line(number + 1, BadLine("truncated_file", str(err) or type(err).__name__), policy,
                               policy_setting)
    if rows:
        for role, names in unseen.items():
            report.absent_fields[f"{fields.setting}.{role}"] = _absent_field_detail(names, sorted(file_fields))
    return rows, line_numbers, report


def _absent_field_detail(names: tuple[str, ...], file_fields: list[str]) -> str:
    """What a warning says of a mapped field that no record holds: most often a typo in the
    mapping, which reads that text as empty in every record."""
    close = difflib.get_close_matches(names[0], file_fields, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    looked_for = " or ".join(repr(name) for name in names)
    return f"{looked_for} ({hint}the file's fields: {_field_list(file_fields) or 'none'})"


def _field_list(names: list[str]) -> str:
    return ", ".join(names[:MAX_FIELD_NAMES_SHOWN]) + (", ..." if len(names) > MAX_FIELD_NAMES_SHOWN else "")


def _with_field_names(bad: BadLine, record: dict[str, Any] | BadLine, fields: ReviewFields | ItemFields) -> BadLine:
    """A missing field is most often a field mapping that does not match the file: say what the
    record has, and which setting maps the field."""
    if (bad.reason not in ("missing_id", "missing_field") and not bad.missing) or not isinstance(record, dict):
        return bad
    detail = f"{bad.detail} (the record's fields: {_field_list(sorted(str(name) for name in record))})"
    settings = settings_naming(fields, bad.missing)
    if settings:
        detail += f"; if the file names it otherwise, set {' or '.join(f'{key}=<its name>' for key in settings)}"
    # Named all at once: a file whose names all differ from the mapping took a run per field.
    others = [names for names in fields.required if set(names).isdisjoint([*record, *bad.missing])]
    if others:
        lacked = "; ".join(f"{' or '.join(map(repr, names))} ({' or '.join(settings_naming(fields, names))})"
                           for names in others)
        detail += f". It lacks these mapped fields too: {lacked}"
    return BadLine(bad.reason, detail, bad.missing)


def read_reviews(
    path: Path | str,
    on_bad_line: BadLinePolicy | str = BadLinePolicy.ERROR,
    max_line_bytes: int = MAX_LINE_BYTES,
    fields: ReviewFields = AMAZON_REVIEW_FIELDS,
) -> ReadResult:
    """Read a reviews file into the interactions table (see :mod:`recsys.data.schema`).

    Repeated (user, item) pairs keep the latest review (by timestamp, then by line order), and
    the number dropped is in ``report.duplicates_dropped``. Row order follows the file.
    """
    path = Path(path)
    policy = BadLinePolicy.parse(on_bad_line)
    rows, line_numbers, report = _read_records(
        path, lambda record: parse_review(record, fields), policy, max_line_bytes, fields
    )
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
    fields: ItemFields = AMAZON_ITEM_FIELDS,
    policy_setting: str = ON_BAD_LINE_SETTING,
) -> ReadResult:
    """Read a metadata file into the items table; repeated item ids keep their first row. Messages
    name ``policy_setting``, where ``on_bad_line`` is set."""
    path = Path(path)
    policy = BadLinePolicy.parse(on_bad_line, policy_setting)
    rows, _, report = _read_records(path, lambda record: parse_item(record, fields), policy, max_line_bytes, fields,
                                    policy_setting)
    table = pd.DataFrame(rows, columns=list(ITEM_DTYPES)).astype(ITEM_DTYPES)
    unique = table.drop_duplicates("item_id", keep="first").reset_index(drop=True)
    report.duplicates_dropped = len(table) - len(unique)
    report.rows_kept = len(unique)
    return ReadResult(table=unique, report=report)
