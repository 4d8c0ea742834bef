"""Train/validation/test splits of an interactions table, saved to disk and reused.

The random split permutes the rows in file order with NumPy's PCG64 generator
(``np.random.default_rng(seed).permutation``), which gives the same permutation on every
platform, and takes the first 80% for training, the next 10% for validation, the rest for test:
the protocol of the review-based rating papers, so that published baselines on a seed compare.
``kfold`` cuts the same permutation into ``folds`` equal parts: part ``fold`` is the test set,
and validation is taken from the start of the remaining rows (``fractions[1]`` of all rows), the
rest is training; running every fold tests each interaction exactly once (cross-validation).
The temporal split depends on content only. A split is saved with its seed and content hashes
and reused, and a test pins a known permutation so that a change of NumPy's stream is caught.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.atomic import atomic_write
from recsys.cache_files import UNREADABLE, discard_unreadable
from recsys.data.errors import SplitMismatchError
from recsys.settings import is_whole_number

log = logging.getLogger(__name__)

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
STRATEGIES: tuple[str, ...] = ("random", "temporal", "kfold")
# Part of split file names: a change of split algorithm makes new files instead of clashing.
SPLIT_FORMAT_VERSION = 2


@dataclass(frozen=True)
class SplitSpec:
    """How to split: ``random`` (by interaction, seeded fractions), ``temporal`` (per user,
    the last interaction to test and the second-to-last to validation) or ``kfold`` (test is
    part ``fold`` of ``folds``; validation ``fractions[1]`` of all rows, from the other parts)."""

    strategy: str = "random"
    seed: int = 0
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    folds: int = 5
    fold: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"data.split.strategy={self.strategy!r} is not allowed; use one of: {', '.join(STRATEGIES)}"
            )
        for name in ("seed", "folds", "fold"):
            value = getattr(self, name)
            if not is_whole_number(value):
                raise ValueError(f"data.split.{name}={value!r} is not allowed: give a whole number")
        given = self.fractions
        listed = isinstance(given, Sequence) and not isinstance(given, str)  # a list, tuple or ListConfig
        numbers = listed and all(
            isinstance(f, (int, float)) and not isinstance(f, bool) for f in given)
        fractions = tuple(float(f) for f in given) if numbers else ()
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
            shown = list(given) if listed else given
            raise ValueError(
                f"data.split.fractions={shown!r} is not allowed: give three non-negative numbers "
                "(train, val, test) that sum to 1, e.g. [0.8,0.1,0.1]"
            )
        object.__setattr__(self, "fractions", fractions)
        if self.folds < 2 or not 0 <= self.fold < self.folds:
            raise ValueError(
                f"data.split.folds={self.folds}, data.split.fold={self.fold}: need folds >= 2 and "
                "0 <= fold < folds"
            )
        if self.strategy == "kfold" and fractions[1] >= 1 - 1 / self.folds:
            raise ValueError(
                f"data.split.fractions[1]={fractions[1]} leaves no training rows with {self.folds} folds"
            )

    def file_stem(self) -> str:
        """The split file's name without suffix: strategy, format version and every setting it depends on."""
        if self.strategy == "temporal":
            return f"temporal-v{SPLIT_FORMAT_VERSION}"
        if self.strategy == "kfold":
            return (f"kfold-v{SPLIT_FORMAT_VERSION}-seed{self.seed}-fold{self.fold}of{self.folds}"
                    f"-val{self.fractions[1]:g}")
        fractions = "-".join(f"{f:g}" for f in self.fractions)
        return f"random-v{SPLIT_FORMAT_VERSION}-seed{self.seed}-{fractions}"


def interactions_fingerprint(interactions: pd.DataFrame) -> str:
    """sha256 of the (user, item, rating, timestamp) rows in order (the random split depends on it)."""
    digest = hashlib.sha256()
    for user, item, rating, timestamp in interactions[["user_id", "item_id", "rating", "timestamp"]].itertuples(
        index=False
    ):
        digest.update(f"{user}\t{item}\t{float(rating):g}\t{int(timestamp)}\n".encode())
    return digest.hexdigest()


def _assignment_fingerprint(interactions: pd.DataFrame, split: np.ndarray) -> str:
    keyed = pd.DataFrame(
        {"user_id": interactions["user_id"], "item_id": interactions["item_id"], "split": split}
    ).sort_values(["user_id", "item_id"], kind="stable")
    digest = hashlib.sha256()
    for user, item, name in keyed.itertuples(index=False):
        digest.update(f"{user}\t{item}\t{name}\n".encode())
    return digest.hexdigest()


def random_split(interactions: pd.DataFrame, seed: int,
                 fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> np.ndarray:
    """Assign each interaction to ``train``/``val``/``test`` at random (seeded), in row order.

    With ``p = default_rng(seed).permutation(n)``: ``p[:int(n*f_train)]`` is train,
    ``p[int(n*f_train):int(n*(f_train+f_val))]`` validation, the rest test. Returns an array of
    split names aligned with the rows of ``interactions``.
    """
    n = len(interactions)
    order = np.random.default_rng(seed).permutation(n)
    end_train = int(n * fractions[0])
    end_val = int(n * (fractions[0] + fractions[1]))
    split = np.empty(n, dtype=object)
    split[order[:end_train]] = "train"
    split[order[end_train:end_val]] = "val"
    split[order[end_val:]] = "test"
    return split


def kfold_split(interactions: pd.DataFrame, seed: int, folds: int, fold: int, val_fraction: float) -> np.ndarray:
    """Fold ``fold`` of a ``folds``-fold split: with ``p = default_rng(seed).permutation(n)`` cut
    into ``folds`` near-equal parts (``np.array_split``), part ``fold`` is test; of the other rows
    (in permutation order) the first ``int(n * val_fraction)`` are validation, the rest train."""
    n = len(interactions)
    parts = np.array_split(np.random.default_rng(seed).permutation(n), folds)
    rest = np.concatenate([part for k, part in enumerate(parts) if k != fold])
    end_val = int(n * val_fraction)
    split = np.empty(n, dtype=object)
    split[parts[fold]] = "test"
    split[rest[:end_val]] = "val"
    split[rest[end_val:]] = "train"
    return split


def temporal_split(interactions: pd.DataFrame) -> np.ndarray:
    """Per user: the latest interaction to ``test``, the one before to ``val``, the rest to ``train``.

    Ties in time (timestamps have one-day resolution) are broken by item id, so the result does
    not depend on row order. A user with one interaction keeps it in train; with two, one goes to
    test and none to validation. Data without review times (every timestamp equal, as when no
    time field is mapped) is refused: the split would follow item ids, not time.
    """
    timestamps = interactions["timestamp"].to_numpy()
    if len(timestamps) > 1 and (timestamps == timestamps[0]).all():
        raise ValueError(
            "data.split.strategy=temporal needs review times, and every review of this dataset has the "
            "same one; map a time field (data.dataset.review_fields.timestamp or .date) or use "
            "data.split.strategy=random"
        )
    frame = pd.DataFrame(
        {
            "user_id": interactions["user_id"].to_numpy(),
            "item_id": interactions["item_id"].to_numpy(),
            "timestamp": interactions["timestamp"].to_numpy(),
            "row": np.arange(len(interactions)),
        }
    ).sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    from_end = frame.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
    count = frame.groupby("user_id", sort=False)["row"].transform("size").to_numpy()
    names = np.full(len(frame), "train", dtype=object)
    names[from_end == 0] = "test"
    names[(from_end == 0) & (count == 1)] = "train"
    names[(from_end == 1) & (count >= 3)] = "val"
    split = np.empty(len(frame), dtype=object)
    split[frame["row"].to_numpy()] = names
    return split


def assign_split(interactions: pd.DataFrame, spec: SplitSpec) -> np.ndarray:
    """Split names for each row of ``interactions`` under ``spec``."""
    if spec.strategy == "random":
        return random_split(interactions, spec.seed, spec.fractions)
    if spec.strategy == "kfold":
        return kfold_split(interactions, spec.seed, spec.folds, spec.fold, spec.fractions[1])
    return temporal_split(interactions)


@dataclass
class SplitManifest:
    """What a split file on disk was made from, so that a stale one is never reused."""

    spec: dict
    data_fingerprint: str
    split_fingerprint: str
    counts: dict[str, int] = field(default_factory=dict)
    format_version: int = SPLIT_FORMAT_VERSION


def load_or_create_split(interactions: pd.DataFrame, spec: SplitSpec, directory: Path) -> pd.Series:
    """Return the split names of ``interactions`` (a Series aligned with its index).

    The split is read from ``directory`` when a file made from the same data and spec exists;
    otherwise it is computed and written there (parquet of ``user_id, item_id, split`` plus a
    JSON manifest with the seed and content hashes).
    """
    directory = Path(directory)
    table_path = directory / f"{spec.file_stem()}.parquet"
    manifest_path = directory / f"{spec.file_stem()}.json"
    data_fingerprint = interactions_fingerprint(interactions)
    if table_path.exists() and manifest_path.exists():
        try:
            split = _read_split(interactions, spec, table_path, manifest_path, data_fingerprint)
        except UNREADABLE as error:  # a split of the same seed is the same split: it is made again
            discard_unreadable([table_path, manifest_path], error)
        else:
            log.info("Reusing split %s", table_path)
            return split

    split = assign_split(interactions, spec)
    names, counts = np.unique(split.astype(str), return_counts=True)
    manifest = SplitManifest(
        spec=asdict(spec),
        data_fingerprint=data_fingerprint,
        split_fingerprint=_assignment_fingerprint(interactions, split),
        counts={str(k): int(v) for k, v in zip(names, counts, strict=True)},
    )
    directory.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(
        {"user_id": interactions["user_id"], "item_id": interactions["item_id"], "split": split}
    ).astype("string")
    atomic_write(table_path, lambda p: table.to_parquet(p, index=False))
    atomic_write(manifest_path, lambda p: p.write_text(json.dumps(asdict(manifest), indent=2)))
    log.info("Wrote split %s (%s)", table_path, manifest.counts)
    return pd.Series(split, index=interactions.index, name="split")


def cold_start_pairs(interactions: pd.DataFrame) -> pd.DataFrame:
    """How many held-out pairs are cold start: per held-out split (rows ``val``, ``test``), its
    ``pairs``, and how many of them have a user (``new_user``) or an item (``new_item``) that no
    training interaction holds. ``interactions`` has ``user_id``, ``item_id`` and ``split`` columns.

    A model places such a user from an empty history and such an item from its metadata alone
    (or an empty document), so a dataset that is not k-core filtered measures much cold-start
    recommendation in its held-out metrics.
    """
    train = interactions[interactions["split"] == "train"]
    counts = {}
    for name in SPLIT_NAMES[1:]:
        part = interactions[interactions["split"] == name]
        counts[name] = {
            "pairs": len(part),
            "new_user": int((~part["user_id"].isin(train["user_id"])).sum()),
            "new_item": int((~part["item_id"].isin(train["item_id"])).sum()),
        }
    return pd.DataFrame.from_dict(counts, orient="index")


def describe_cold_start(counts: pd.DataFrame) -> str | None:
    """One line on the cold-start pairs of :func:`cold_start_pairs`, or None when there are none."""
    if not counts[["new_user", "new_item"]].to_numpy().any():
        return None

    def shares(column: str) -> str:
        return " and ".join(
            f"{name} {row[column]:,} of {row['pairs']:,} ({100 * row[column] / max(row['pairs'], 1):.1f}%)"
            for name, row in counts.iterrows()
        )

    return (f"Cold start: held-out pairs whose user has no training review: {shares('new_user')}; whose item "
            f"has none: {shares('new_item')}. The metrics include them: their users are placed "
            "from an empty history, their items from their metadata alone (empty without it).")


def split_fingerprints(spec: SplitSpec, directory: Path) -> dict[str, str]:
    """The data and assignment fingerprints of the split that :func:`load_or_create_split` keeps in
    ``directory`` for ``spec`` (checked against the data whenever it is reused)."""
    manifest = json.loads((Path(directory) / f"{spec.file_stem()}.json").read_text())
    return {"data": manifest["data_fingerprint"], "split": manifest["split_fingerprint"]}


def _read_split(
    interactions: pd.DataFrame, spec: SplitSpec, table_path: Path, manifest_path: Path, data_fingerprint: str
) -> pd.Series:
    manifest = SplitManifest(**json.loads(manifest_path.read_text()))
    saved_spec = SplitSpec(**manifest.spec)
    if saved_spec != spec or manifest.data_fingerprint != data_fingerprint:
        raise SplitMismatchError(
            f"{manifest_path} was made for {saved_spec} on data {manifest.data_fingerprint[:12]}, "
            f"not for {spec} on data {data_fingerprint[:12]}. Delete it to make a new split."
        )
    saved = pd.read_parquet(table_path)
    merged = interactions[["user_id", "item_id"]].astype("string").merge(
        saved, on=["user_id", "item_id"], how="left", validate="one_to_one"
    )
    split = merged["split"].to_numpy(dtype=object)
    if pd.isna(merged["split"]).any() or _assignment_fingerprint(interactions, split) != manifest.split_fingerprint:
        raise SplitMismatchError(
            f"{table_path} does not match its manifest {manifest_path} (edited or corrupted?). "
            "Delete both files to make a new split."
        )
    return pd.Series(split, index=interactions.index, name="split")
