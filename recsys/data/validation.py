"""Bad-line policy and the accounting of every line read.

The invariant kept by every reader: ``lines_read == rows_kept + sum(skipped.values())
+ duplicates_dropped + blank_lines``. Nothing read is lost without a count.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from recsys.data.errors import ON_BAD_LINE_SETTING, DataFormatError

log = logging.getLogger(__name__)

BAD_LINE_REASONS: dict[str, str] = {
    "invalid_json": "the line is not valid JSON",
    "not_an_object": "the line is JSON but not an object",
    "missing_id": "a user or item id is missing or empty",
    "missing_field": "a required field is missing",
    "wrong_type": "a field has the wrong type",
    "rating_out_of_range": "the rating is not a number in its range (1..5 unless the data config says otherwise)",
    "non_utf8": "the line is not valid UTF-8",
    "empty_text": "the review has neither text nor summary (both empty or whitespace)",
    "line_too_long": "the line is longer than the reader's limit (max_line_bytes)",
    "truncated_file": "the compressed file ends early (truncated download?)",
    "invalid_csv": "the CSV/TSV row cannot be parsed (a stray quote, or a field over the csv module's limit)",
    "wrong_field_count": "the CSV/TSV row has more or fewer fields than the header",
}

MAX_EXAMPLES_PER_REASON = 3


class BadLinePolicy(str, Enum):
    """What to do with a line that cannot be used: raise (``error``) or count and go on (``skip``)."""

    ERROR = "error"
    SKIP = "skip"

    @classmethod
    def parse(cls, value: str | BadLinePolicy, setting: str = ON_BAD_LINE_SETTING) -> BadLinePolicy:
        """Turn a config value (set at ``setting``) into a policy, with an error that lists the allowed values."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(p.value for p in cls)
            raise ValueError(
                f"{setting}={value!r} is not allowed; use one of: {allowed}"
            ) from None


class BadLine(Exception):
    """Raised by line parsers; the reader adds the file and line number."""

    def __init__(self, reason: str, detail: str, missing: tuple[str, ...] = ()) -> None:
        if reason not in BAD_LINE_REASONS:
            raise KeyError(f"unknown bad-line reason {reason!r}")
        self.reason = reason
        self.detail = detail
        self.missing = missing  # the file's field names that the record lacks, for a missing field
        super().__init__(f"{reason}: {detail}")


@dataclass
class ReadReport:
    """What happened to each line of one file."""

    path: str
    lines_read: int = 0
    rows_kept: int = 0
    blank_lines: int = 0
    duplicates_dropped: int = 0
    # Rows the reader kept that the dataset does not use (metadata of items without reviews).
    rows_unused: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    # Mapped fields that no record holds (read as empty in every row): setting -> what was looked for.
    absent_fields: dict[str, str] = field(default_factory=dict)

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    def is_balanced(self) -> bool:
        """True when every line read is kept or counted under a reason."""
        accounted = self.rows_kept + self.rows_skipped + self.duplicates_dropped + self.blank_lines
        return self.lines_read == accounted

    def record_bad_line(
        self, line_number: int, bad: BadLine, policy: BadLinePolicy, policy_setting: str = ON_BAD_LINE_SETTING
    ) -> None:
        """Raise under ``error`` (naming ``policy_setting``, where the policy is set); count the line
        and keep an example under ``skip``."""
        if policy is BadLinePolicy.ERROR:
            raise DataFormatError(self.path, line_number, bad.reason, bad.detail, policy_setting)
        self.skipped[bad.reason] += 1
        examples = self.examples.setdefault(bad.reason, [])
        if len(examples) < MAX_EXAMPLES_PER_REASON:
            examples.append(f"line {line_number}: {bad.detail}")

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "lines_read": self.lines_read,
            "rows_kept": self.rows_kept,
            "blank_lines": self.blank_lines,
            "duplicates_dropped": self.duplicates_dropped,
            "rows_unused": self.rows_unused,
            "skipped": dict(self.skipped),
            "examples": self.examples,
            "absent_fields": self.absent_fields,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ReadReport:
        return cls(
            path=d["path"],
            lines_read=d["lines_read"],
            rows_kept=d["rows_kept"],
            blank_lines=d["blank_lines"],
            duplicates_dropped=d["duplicates_dropped"],
            rows_unused=d.get("rows_unused", 0),
            skipped=Counter(d["skipped"]),
            examples=d["examples"],
            absent_fields=d.get("absent_fields", {}),
        )

    def log_summary(self) -> None:
        """One log line for a clean file; one line per reason (with examples) otherwise."""
        name = Path(self.path).name
        log.info(
            "%s: %d lines read, %d rows kept, %d skipped, %d duplicate rows dropped",
            name, self.lines_read, self.rows_kept, self.rows_skipped, self.duplicates_dropped,
        )
        for reason, count in sorted(self.skipped.items()):
            log.warning(
                "%s: skipped %d lines (%s), e.g. %s",
                name, count, BAD_LINE_REASONS[reason], grouped_examples(self.examples.get(reason, [])),
            )
        self.warn_absent_fields()

    def warn_absent_fields(self) -> None:
        """One warning per mapped field that no record of the file holds."""
        name = Path(self.path).name
        for setting, looked_for in self.absent_fields.items():
            log.warning(
                "%s: %s names %s, a field that no record has a value for, so every row's %s reads as "
                "empty; set it to the field that holds it, or to null if the file has none",
                name, setting, looked_for, setting.rsplit(".", 1)[-1],
            )


def grouped_examples(examples: list[str]) -> str:
    """Examples of one reason, each distinct detail once: ``lines 3, 9: 'text' is empty; line 12: ...``.

    Lines that fail alike (the same missing field, the same hint) would otherwise repeat a long
    message once per example.
    """
    lines_by_detail: dict[str, list[str]] = {}
    for example in examples:
        where, _, detail = example.partition(": ")
        lines_by_detail.setdefault(detail, []).append(where.removeprefix("line "))
    return "; ".join(
        f"{'lines' if len(lines) > 1 else 'line'} {', '.join(lines)}: {detail}"
        for detail, lines in lines_by_detail.items()
    )
