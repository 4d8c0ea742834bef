"""Build the bad-input corpus: one small review file per kind of damage, with what the readers must do.

Run by the test suite (``tests/data/test_bad_inputs.py``) into ``tests/data/bad_inputs/``; run it by
hand to look at the files: ``python tests/data/make_bad_inputs.py [folder]``. The folder is rebuilt
from scratch every time, so its content never drifts from the expectations below.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent / "bad_inputs"
LONG_LINE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class BadInputCase:
    """A corpus file and the readers' expected handling of it.

    ``reason`` is the bad-line reason (None when every line is readable); under
    ``on_bad_line=error`` reading raises at ``line``; under ``skip`` ``skipped`` lines are counted
    under ``reason`` and ``kept`` rows remain (after ``duplicates`` repeated pairs are dropped).
    """

    name: str
    filename: str
    reason: str | None
    line: int | None
    skipped: int
    kept: int
    duplicates: int = 0

    def path(self, root: Path = CORPUS_DIR) -> Path:
        return root / self.filename


def _review(user: str, item: str, rating: object = 5.0, t: int = 1_400_000_000, **fields: object) -> dict:
    return {"reviewerID": user, "asin": item, "overall": rating, "reviewText": f"{user} likes {item}",
            "summary": "fine", "unixReviewTime": t, **fields}


def _line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


GOOD = [_line(_review("A", "X")), _line(_review("B", "Y"))]
TAIL = [_line(_review("C", "Z"))]


def _write(path: Path, lines: list[bytes], compress: bool = False) -> None:
    payload = b"".join(lines)
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)


def _truncated_gzip(path: Path) -> tuple[int, int]:
    """A gzip file cut at 60% of its bytes; returns (first damaged line, complete lines before it)."""
    lines = [_line(_review(f"U{i}", f"I{i % 7}", t=1_400_000_000 + i)) for i in range(200)]
    compressed = gzip.compress(b"".join(lines), mtime=0)
    cut = compressed[: int(len(compressed) * 0.6)]
    path.write_bytes(cut)
    readable = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut)
    complete = readable.count(b"\n")
    return complete + 1, complete


def build(root: Path = CORPUS_DIR) -> list[BadInputCase]:
    """Write the corpus into ``root`` (emptied first) and return its cases."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    cases: list[BadInputCase] = []

    def bad(name: str, bad_lines: list[bytes], reason: str, compress: bool = False) -> None:
        filename = f"{name}.json" + (".gz" if compress else "")
        _write(root / filename, GOOD + bad_lines + TAIL, compress)
        cases.append(BadInputCase(name, filename, reason, line=len(GOOD) + 1, skipped=len(bad_lines),
                                  kept=len(GOOD) + len(TAIL)))

    first_bad, complete = _truncated_gzip(root / "truncated_gzip.json.gz")
    cases.append(BadInputCase("truncated_gzip", "truncated_gzip.json.gz", "truncated_file", first_bad, 1, complete))
    bad("invalid_json", [b'{"reviewerID": "U2", "asin": \n', b"{'not': json\n"], "invalid_json")
    bad("wrong_field_types", [
        _line(_review(12.5, "X")),  # a fractional id (whole numbers are read as text)
        _line(_review("D", "X", reviewText=["a", "list"])),
        _line(_review("E", "X", t="yesterday")),
        _line(_review("F", ["X"])),
    ], "wrong_type")
    bad("rating_zero", [_line(_review("D", "X", 0))], "rating_out_of_range")
    bad("rating_six", [_line(_review("D", "X", 6))], "rating_out_of_range")
    bad("rating_nan", [json.dumps(_review("D", "X", float("nan"))).encode() + b"\n"], "rating_out_of_range")
    bad("rating_string", [_line(_review("D", "X", "five"))], "wrong_type")
    bad("empty_text", [_line(_review("D", "X", reviewText="", summary=""))], "empty_text")
    bad("whitespace_text", [_line(_review("D", "X", reviewText=" \t\u00a0 ", summary="\n  "))], "empty_text")
    bad("non_utf8", [b'{"reviewerID": "D", "asin": "X", "overall": 5, "reviewText": "caf\xe9 au lait"}\n'],
        "non_utf8")
    long_text = "a" * LONG_LINE_BYTES
    bad("ten_megabyte_line", [_line(_review("D", "X", reviewText=long_text))], "line_too_long", compress=True)

    duplicates = [_line(_review("A", "X", 1.0, t=1_500_000_000)), _line(_review("A", "X", 2.0, t=1_300_000_000))]
    _write(root / "duplicate_pairs.json", GOOD + duplicates + TAIL)
    cases.append(BadInputCase("duplicate_pairs", "duplicate_pairs.json", None, None, 0, kept=3, duplicates=2))

    _write(root / "empty_file.json", [])
    cases.append(BadInputCase("empty_file", "empty_file.json", None, None, 0, kept=0))
    _write(root / "empty_file_gzip.json.gz", [], compress=True)
    cases.append(BadInputCase("empty_file_gzip", "empty_file_gzip.json.gz", None, None, 0, kept=0))

    # A dataset folder whose metadata names items that no review mentions.
    meta_dir = root / "unknown_meta_ids"
    meta_dir.mkdir()
    _write(meta_dir / "reviews.json", GOOD + TAIL)
    _write(meta_dir / "meta.json", [
        _line({"asin": "X", "title": "Guitar strings", "description": "bright"}),
        _line({"asin": "NOT-REVIEWED-1", "title": "Ghost"}),
        _line({"asin": "NOT-REVIEWED-2", "title": "Phantom"}),
    ])
    return cases


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS_DIR
    for case in build(target):
        print(f"{case.filename:32} {case.reason or '-':20} line {case.line}")
