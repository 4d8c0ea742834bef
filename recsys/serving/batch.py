"""Recommendations for many known users at once, written to a file (``recommend.py users=... out=...``):
the batch job that precomputes every user's top-k for a key-value store or a mailing.

One row per (user, rank), the fields that ``POST /recommend`` answers with except the item's
snippet (the export's ``items.parquet`` holds it): Parquet, CSV or JSON lines by the file's suffix.
The file is written batch by batch (memory stays that of one batch of users) and appears whole
or not at all.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.atomic import atomic_write
from recsys.progress import progress_bar
from recsys.serving.recommender import Recommendation, Recommender, unknown_id_hint

ALL_USERS = "all"
# The file's columns: the user's id, then the fields of a Recommendation but its snippet.
SCHEMA = pa.schema([("user_id", pa.string()), ("rank", pa.int32()), ("item_id", pa.string()), ("score", pa.float64()),
                    ("cosine", pa.float64()), ("predicted_rating", pa.float64()), ("like_probability", pa.float64()),
                    ("explanation", pa.string())])
COLUMNS = tuple(SCHEMA.names)
SUFFIXES = (".parquet", ".csv", ".jsonl")
BATCH_USERS = 256  # users answered per call (one batched search) and written per part of the file


def users_to_recommend(recommender: Recommender, users: str | Path) -> list[str]:
    """The user ids that ``users`` names: ``all`` (every user of the export, in its order), or a
    text file of ids, one a line (blank lines skipped, repeats kept once, in the file's order). An
    id the export does not hold is refused with its file and line."""
    if str(users) == ALL_USERS:
        return [str(u) for u in recommender.bundle.user_ids]
    path = Path(users).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"users={users}: no such file; give {ALL_USERS} or a text file of user ids, one a line")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM, as spreadsheet programs write, is not part of an id
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8, one user id a line") from None
    chosen: dict[str, None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        user = line.strip()
        if not user:
            continue
        if user not in recommender.user_position:
            hint = unknown_id_hint(user, recommender.user_position, "users")
            raise ValueError(f"{path}, line {number}: unknown user {user!r} ({hint})")
        chosen.setdefault(user)
    if not chosen:
        raise ValueError(f"{path} holds no user id; give one a line")
    return list(chosen)


def recommendation_rows(user_ids: list[str], answers: list[list[Recommendation]]) -> pd.DataFrame:
    """The table of ``answers`` (one list per user of ``user_ids``): one row per (user, rank)."""
    rows = [{"user_id": user, **r.to_dict()} for user, answer in zip(user_ids, answers, strict=True) for r in answer]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def output_suffix(out: str | Path) -> str:
    """The format of ``out``, by its suffix; anything but :data:`SUFFIXES` is refused."""
    suffix = Path(out).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"out={out}: the format is chosen by the suffix; use one of: {', '.join(SUFFIXES)}")
    return suffix


def write_recommendations(recommender: Recommender, user_ids: list[str], out: str | Path, k: int = 10,
                          exclude_seen: bool = True, batch_users: int = BATCH_USERS, progress: bool = True) -> int:
    """Write the top ``k`` of each of ``user_ids`` to ``out`` (see the module's docstring), and
    return the number of rows written."""
    suffix = output_suffix(out)
    written = 0

    def write(path: Path) -> None:
        nonlocal written
        with _TableWriter(path, suffix) as table, \
                progress_bar(len(user_ids), f"Recommending for {len(user_ids):,} users", progress) as advance:
            for start in range(0, len(user_ids), batch_users):
                batch = user_ids[start : start + batch_users]
                rows = recommendation_rows(batch, recommender.recommend_users(batch, k, exclude_seen))
                table.write(rows)
                written += len(rows)
                advance(len(batch))

    atomic_write(out, write)
    return written


class _TableWriter:
    """Appends tables to one Parquet, CSV or JSON-lines file; the columns of the first are kept."""

    def __init__(self, path: Path, suffix: str) -> None:
        self.path, self.suffix = path, suffix
        self.parquet: pq.ParquetWriter | None = None
        self.started = False

    def __enter__(self) -> _TableWriter:
        if self.suffix == ".parquet":
            self.parquet = pq.ParquetWriter(self.path, SCHEMA)
        else:
            self.path.write_text("")
        return self

    def write(self, rows: pd.DataFrame) -> None:
        if self.parquet is not None:
            self.parquet.write_table(pa.Table.from_pandas(rows, schema=SCHEMA, preserve_index=False))
        elif self.suffix == ".csv":
            rows.to_csv(self.path, mode="a", header=not self.started, index=False)
        else:
            rows.to_json(self.path, orient="records", lines=True, mode="a")
        self.started = True

    def __exit__(self, *exc: object) -> None:
        if self.parquet is not None:
            self.parquet.close()

