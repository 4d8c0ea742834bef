"""Exceptions raised while reading and preparing review data."""

from __future__ import annotations

from pathlib import Path

# Where a dataset's bad-line policy is set, named in messages (scripts/add_items.py names its own: on_bad_line).
ON_BAD_LINE_SETTING = "data.on_bad_line"


class DataFormatError(ValueError):
    """A line of a data file cannot be used.

    Carries where (file and 1-based line number) and why (a short reason key from
    :data:`recsys.data.validation.BAD_LINE_REASONS` plus a human detail).
    """

    def __init__(self, path: Path | str, line_number: int, reason: str, detail: str,
                 policy_setting: str = ON_BAD_LINE_SETTING) -> None:
        self.path = Path(path)
        self.line_number = line_number
        self.reason = reason
        self.detail = detail
        super().__init__(
            f"{self.path}:{line_number}: {reason}: {detail}\n"
            f"Fix or remove the line, or set {policy_setting}=skip to skip bad lines and count them."
        )


class EmptyDatasetError(ValueError):
    """A data file was read without error but holds no usable rows."""

    def __init__(self, path: Path | str, lines_read: int, skipped: int) -> None:
        self.path = Path(path)
        super().__init__(
            f"{self.path}: no usable reviews ({lines_read} lines read, {skipped} skipped as bad).\n"
            "Check that this is the right file: an interrupted download can leave an empty one."
        )


AMAZON_HOW_TO_GET = (
    "download the 5-core review file (and the meta_*.json.gz item file, when the dataset uses one)\n"
    "from the public Amazon review data releases by McAuley et al.\n"
    "(2014: https://jmcauley.ucsd.edu/data/amazon/ ; 2018: https://nijianmo.github.io/amazon/)\n"
    "into that folder"
)


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not where the configuration says they are."""

    def __init__(self, dataset: str, looked_in: Path | None, expected: list[str],
                 how_to_get: str = AMAZON_HOW_TO_GET) -> None:
        """``looked_in`` is the folder that relative file names were looked for in; None where
        every file is named by an absolute path (the data folder then plays no part)."""
        self.dataset = dataset
        self.looked_in = looked_in
        self.expected = expected
        files = "\n".join(f"  - {name}" for name in expected)
        where = f"Looked in: {looked_in}\n" if looked_in is not None else ""
        folder_hint = (
            ",\nor point recsys at the folder that holds them:\n"
            "  export RECSYS_DATA_DIR=/path/to/data     (or the override paths.data_dir=/path/to/data)"
            if looked_in is not None else "."
        )
        super().__init__(
            f"Dataset '{dataset}' not found.\n{where}Expected files:\n{files}\n"
            f"How to get them: {how_to_get}{folder_hint}"
        )


class SplitMismatchError(RuntimeError):
    """A split saved on disk does not belong to the data or settings it is loaded for."""


class ChangedDataError(SplitMismatchError):
    """A checkpoint meets data other than the data it was trained on; ``consequence`` says what
    that would do."""

    def __init__(self, dataset: str, checkpoint: Path | str, saved: dict[str, str], now: dict[str, str],
                 consequence: str) -> None:
        if saved.get("data") != now.get("data"):
            what, key = "the interactions it was trained on have changed", "data"
        else:
            what, key = "the same interactions are split otherwise", "split"
        super().__init__(
            f"{checkpoint} does not match dataset '{dataset}' as it is read now: {what} "
            f"(fingerprint {str(saved.get(key))[:12]} at training, {now[key][:12]} now). {consequence}\n"
            "Point recsys at the files it was trained on, or train again on the new data."
        )
