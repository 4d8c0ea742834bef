"""Records of a data file, each with the line it starts on: JSON lines, CSV / TSV, or Parquet.

The format follows the file name: ``.json`` / ``.jsonl`` (one object per line, or one JSON array
of objects, where the "line" is the element's number), ``.csv``, ``.tsv``
(a header row naming the fields, then one record per row; quoted fields may span lines, and
the line number is the one the record starts on), each optionally ``.gz``;
and ``.parquet`` (where the "line" is the row number, 1-based). JSON lines that are not JSON but
start with ``{'`` are read as Python literals with :func:`ast.literal_eval` (never ``eval``): the
2014 Amazon metadata files are written that way.

:func:`iter_records` yields ``(line_number, record)`` where ``record`` is a dict, a
:class:`BadLine` saying why the line cannot be read, or ``None`` for a blank line. A gzip stream
that ends early raises :class:`EOFError` (or a zlib/gzip error) after every complete record
before the damage.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from recsys.data.validation import BadLine

# Far above any real review (the longest Musical Instruments line is a few kB); a longer line is
# a broken file, and reading it whole could exhaust memory.
MAX_LINE_BYTES = 1 << 20
_DRAIN_CHUNK = 1 << 20
_PARQUET_BATCH_ROWS = 65_536
_ARRAY_PEEK_BYTES = 4096

FORMATS: dict[str, str] = {".json": "jsonl", ".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}

Record = dict[str, Any] | BadLine | None


def file_format(path: Path) -> str:
    """``jsonl``, ``csv``, ``tsv`` or ``parquet``, from the name (a ``.gz`` suffix is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = FORMATS.get(suffixes[-1]) if suffixes else None
    if kind is None or (kind == "parquet" and path.suffix.lower() == ".gz"):
        allowed = ", ".join(sorted(FORMATS)) + " (each but .parquet also .gz)"
        raise ValueError(f"{path}: unknown data file type; recsys reads {allowed}")
    return kind


def iter_records(
    path: Path, max_line_bytes: int = MAX_LINE_BYTES, numeric: Iterable[str] = ()
) -> Iterator[tuple[int, Record]]:
    """Yield ``(line_number, record)`` for every record of ``path`` (see the module docstring).

    ``max_line_bytes`` bounds a JSON line; a CSV field is bounded by :mod:`csv`'s field size
    limit (131,072 characters), and a longer one is reported as ``invalid_csv``. ``numeric``
    names the fields that hold numbers: CSV and TSV store them as text, and JSON and Parquet
    exports often do too (``"4.0"``), so a text value of such a field is converted where it parses
    (a value that does not is left as text for the parser to refuse).
    """
    numbers = frozenset(numeric)
    for number, record in _records(path, max_line_bytes):
        yield number, _with_numbers(record, numbers)


def _records(path: Path, max_line_bytes: int) -> Iterator[tuple[int, Record]]:
    kind = file_format(path)
    elements = _array_elements(path) if kind == "jsonl" else None
    if elements is not None:
        for number, element in enumerate(elements, start=1):
            yield number, element if isinstance(element, dict) else BadLine(
                "not_an_object", f"element {number} of the file's array is a JSON {type(element).__name__}"
            )
    elif kind == "jsonl":
        for number, raw in iter_raw_lines(path, max_line_bytes):
            if raw is None:
                yield number, BadLine("line_too_long", f"over {max_line_bytes:,} bytes")
            elif not raw.strip():
                yield number, None
            else:
                yield number, _json_record(raw)
    elif kind == "parquet":
        yield from _parquet_records(path)
    else:
        yield from _delimited_records(path, "\t" if kind == "tsv" else ",")


def _with_numbers(record: Record, numeric: frozenset[str]) -> Record:
    if isinstance(record, dict):
        for name in numeric.intersection(record):
            if isinstance(record[name], str):
                record[name] = _number(record[name])
    return record


def iter_raw_lines(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """Yield ``(line_number, raw bytes)`` of a text file (gzip when the name ends in ``.gz``), 1-based.

    A line longer than ``max_line_bytes`` is yielded as ``None`` (its bytes are read in chunks and
    dropped, never held whole).
    """
    with _open_binary(path) as handle:
        number = 0
        while raw := handle.readline(max_line_bytes + 1):
            number += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):
                    raw = handle.readline(_DRAIN_CHUNK)
                yield number, None
            else:
                yield number, raw


def _open_binary(path: Path) -> BinaryIO:
    if path.suffix.lower() == ".gz":
        return cast(BinaryIO, gzip.open(path, "rb"))  # a GzipFile reads as any binary file does
    return open(path, "rb")


def _json_record(raw: bytes) -> dict[str, Any] | BadLine:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return BadLine("non_utf8", f"invalid UTF-8 byte at offset {err.start}")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        obj = _python_literal(line)
        if obj is None:
            return BadLine("invalid_json", f"{err.msg} at column {err.colno}")
    if not isinstance(obj, dict):
        return BadLine("not_an_object", f"found a JSON {type(obj).__name__}")
    return obj


def _array_elements(path: Path) -> list | None:
    """The elements of a ``.json`` file that is one JSON array (a common export), else ``None``.

    Only a file whose first character is ``[`` is tried, and it is read whole (an array cannot be
    streamed); one that does not parse as an array holding objects is read as JSON lines.
    """
    with _open_binary(path) as handle:
        head = handle.read(_ARRAY_PEEK_BYTES)
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        return None
    try:
        with _open_binary(path) as handle:
            value = json.loads(handle.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, EOFError, gzip.BadGzipFile, zlib.error):
        return None
    # A one-line file "[1, 2]" reads as JSON lines: one bad line, as it always did.
    return value if isinstance(value, list) and any(isinstance(e, dict) for e in value) else None


def _python_literal(line: str) -> dict[str, Any] | None:
    """Parse a 2014-style metadata line (a Python dict literal), or return None."""
    if not line.lstrip().startswith("{'"):
        return None
    try:
        value = ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _delimited_records(path: Path, delimiter: str) -> Iterator[tuple[int, Record]]:
    # surrogateescape keeps undecodable bytes as lone surrogates, so that one bad row is reported
    # instead of the whole file failing to decode; utf-8-sig drops the byte-order mark that
    # spreadsheet programs write, which would otherwise become part of the first field's name.
    with io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
        rows = csv.reader(text, delimiter=delimiter, strict=True)
        header: list[str] | None = None
        consumed = 0
        while True:
            start = consumed + 1
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as err:
                consumed = rows.line_num
                yield start, BadLine("invalid_csv", str(err))
                continue
            consumed = rows.line_num
            if header is None:
                header = [name.strip() for name in row]
                continue
            yield start, _row_record(row, header)


def _row_record(row: list[str], header: list[str]) -> Record:
    if not any(field.strip() for field in row):
        return None
    if len(row) != len(header):
        return BadLine("wrong_field_count", f"{len(row)} fields where the header has {len(header)}")
    for column, field in enumerate(row):
        try:
            field.encode("utf-8")
        except UnicodeEncodeError:
            return BadLine("non_utf8", f"invalid UTF-8 in field '{header[column]}'")
    record: dict[str, Any] = {}
    for name, field in zip(header, row, strict=True):
        if field == "":
            continue  # an empty CSV field is a missing value
        record[name] = field
    return record


def _number(field: str) -> float | int | str:
    try:
        return int(field)
    except ValueError:
        pass
    try:
        return float(field)
    except ValueError:
        return field


def _parquet_records(path: Path) -> Iterator[tuple[int, Record]]:
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            number += 1
            yield number, {name: value for name, value in row.items() if value is not None}
