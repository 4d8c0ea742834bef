"""Cold items: how well the item tower places an item by its text alone, for the users who go on to
review it, when the item took no part in training.

Each fold holds out a seeded share of the items (those with a metadata document) together with all
their reviews, trains on the rest (a copy of the reviews file without them), exports the model, adds
the held-out items to the export with :func:`recsys.export.new_items.add_items` (their documents,
no id rows: what ``scripts/add_items.py`` does for a growing catalog) and ranks them for every
trained user who reviewed one. Two rankings are scored:

- *among the new items*: the held-out items only, by each scorer; the two-tower cosine against
  text baselines that need no training (the pretrained encoder's embeddings, as the export holds
  them) and chance;
- *in the whole grown catalog*: the export's own ranking (cosine, or its fusion with EASE), the
  user's training items excluded, as a known user is served: do the new items surface at all?
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from recsys.benchmarking.harness import best_checkpoint, compose_training, require_fresh, run_training
from recsys.benchmarking.report import mean_std_cell
from recsys.data.fields import ReviewFields
from recsys.data.loading import load_tables
from recsys.data.negatives import UserItemSets
from recsys.data.records import iter_records
from recsys.data.sources import LocatedFiles, locate
from recsys.data.texts import metadata_document
from recsys.export import export_checkpoint
from recsys.export.new_items import add_items
from recsys.serving.recommender import Recommender
from recsys.training.ranking import ranking_metrics

log = logging.getLogger(__name__)

KS = (5, 10)
RANDOM_DRAWS = 50  # chance is averaged over this many seeded random rankings
ColdScorer = Callable[["ColdFoldData", torch.Tensor], torch.Tensor]


def documents_of(items: pd.DataFrame | None) -> pd.DataFrame:
    """``item_id, document`` of the items table rows that have a metadata document (not empty)."""
    if items is None or items.empty:
        return pd.DataFrame({"item_id": pd.Series(dtype=str), "document": pd.Series(dtype=str)})
    documents = pd.DataFrame({"item_id": items["item_id"].astype(str),
                              "document": [metadata_document(row) for row in items.itertuples(index=False)]})
    return documents[documents["document"].str.strip() != ""].drop_duplicates("item_id").reset_index(drop=True)


def cold_item_folds(item_ids: pd.Index | list[str], folds: int, seed: int) -> list[list[str]]:
    """A seeded partition of ``item_ids`` into ``folds`` parts of (nearly) equal size."""
    if folds < 2:
        raise ValueError(f"cold.folds={folds} is not allowed; use 2 or more")
    ordered = np.sort(np.asarray(list(item_ids), dtype=str))
    if len(ordered) < folds:
        raise ValueError(f"{len(ordered)} items with a document cannot be split into {folds} folds")
    shuffled = ordered[np.random.default_rng(seed).permutation(len(ordered))]
    return [sorted(part.tolist()) for part in np.array_split(shuffled, folds)]


def write_without_items(reviews: Path, fields: ReviewFields, cold: set[str], out: Path) -> tuple[int, int]:
    """Copy the records of the reviews file ``reviews`` (any format recsys reads) to ``out``, JSON
    lines (gzip), leaving out those of the items ``cold``; unreadable lines are left out too (the
    full dataset's read reports them). Returns (records kept, records left out)."""
    kept = dropped = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8") as handle:
        for _, record in iter_records(reviews, numeric=fields.numeric):
            if not isinstance(record, dict):
                continue
            item = record.get(fields.item)
            if item is not None and str(item).strip() in cold:
                dropped += 1
                continue
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            kept += 1
    return kept, dropped


class ColdFoldData:
    """A grown export and the held-out reviews of its new items by users it knows (trained users)."""

    def __init__(self, export: Path, held_out: pd.DataFrame, cold_items: list[str]) -> None:
        self.recommender = Recommender.from_export(export)
        bundle = self.recommender.bundle
        self.bundle = bundle
        positions = self.recommender.item_position
        trained_users = set(bundle.reviews["user_id"].astype(str))
        held_out = held_out[held_out["user_id"].isin(trained_users) & held_out["item_id"].isin(positions)]
        self.user_ids = sorted(held_out["user_id"].unique())
        self.users = np.arange(len(self.user_ids))
        row_of = {user: row for row, user in enumerate(self.user_ids)}
        self.cold = torch.tensor(sorted(positions[i] for i in cold_items if i in positions), dtype=torch.long)
        self.relevant = UserItemSets.from_pairs(
            np.array([row_of[u] for u in held_out["user_id"]], dtype=np.int64),
            np.array([positions[i] for i in held_out["item_id"]], dtype=np.int64),
            len(self.user_ids), len(bundle.item_ids))
        self.pairs = len(held_out)

    def user_reviews(self) -> list[np.ndarray]:
        """Rows of the export's training reviews of each evaluated user."""
        rows = self.recommender.user_reviews
        return [rows[user] for user in self.user_ids]


def two_tower_cosine(data: ColdFoldData, items: torch.Tensor) -> torch.Tensor:
    """The towers' cosine of each user's vector and each item's."""
    positions = [data.recommender.user_position[u] for u in data.user_ids]
    return data.bundle.user_vectors[positions] @ data.bundle.item_vectors[items].T


def zero_shot_text(data: ColdFoldData, items: torch.Tensor) -> torch.Tensor:
    """The pretrained encoder alone: cosine of the mean of a user's review embeddings and each item
    document's embedding (the issue's zero-shot MiniLM)."""
    reviews = F.normalize(data.bundle.net.review_text.float(), dim=-1)
    users = F.normalize(torch.stack([reviews[torch.from_numpy(r)].mean(0) for r in data.user_reviews()]), dim=-1)
    return users @ F.normalize(data.bundle.net.item_text[items].float(), dim=-1).T


def document_neighbours(data: ColdFoldData, items: torch.Tensor) -> torch.Tensor:
    """Content-based item-kNN: the mean cosine of an item's document embedding and the documents
    of the items the user reviewed in training."""
    documents = F.normalize(data.bundle.net.item_text.float(), dim=-1)
    reviewed = data.recommender.review_items
    similarity = documents @ documents[items].T
    return torch.stack([similarity[torch.from_numpy(reviewed[r])].mean(0) for r in data.user_reviews()])


def chance(data: ColdFoldData, items: torch.Tensor, draw: int) -> torch.Tensor:
    """Uniform random scores (seeded by ``draw``)."""
    generator = torch.Generator().manual_seed(draw)
    return torch.rand(len(data.user_ids), len(items), generator=generator)


COLD_SCORERS: dict[str, ColdScorer] = {
    "two-tower (text part of the item tower)": two_tower_cosine,
    "document kNN (pretrained MiniLM)": document_neighbours,
    "zero-shot MiniLM (mean of review embeddings)": zero_shot_text,
}
CHANCE = "chance"


def _ranked(data: ColdFoldData, scores: torch.Tensor) -> torch.Tensor:
    """Catalog positions of the new items, best first, by ``scores`` [users, new items]."""
    order = scores.argsort(dim=1, descending=True, stable=True)[:, : max(KS)]
    return data.cold[order]


def score_new_items(data: ColdFoldData) -> dict[str, dict[str, float]]:
    """Ranking metrics @ ``KS`` of each scorer (and chance) ranking the new items only."""
    results = {name: ranking_metrics(_ranked(data, scorer(data, data.cold)), data.users, data.relevant, KS)
               for name, scorer in COLD_SCORERS.items()}
    draws = [ranking_metrics(_ranked(data, chance(data, data.cold, d)), data.users, data.relevant, KS)
             for d in range(RANDOM_DRAWS)]
    results[CHANCE] = {key: float(np.mean([d[key] for d in draws])) for key in draws[0]}
    return results


def score_whole_catalog(data: ColdFoldData, k: int = 10) -> dict[str, float]:
    """The export's own ranking of the whole grown catalog (training items excluded), as a known
    user is served: recall@k and NDCG@k of the held-out new items, the share of the top-k slots
    that new items take, and the new items' share of the catalog."""
    _, top = data.recommender.search(data.user_ids, k=k)
    metrics = ranking_metrics(torch.from_numpy(top), data.users, data.relevant, (k,))
    new = np.isin(top, data.cold.numpy())
    return {f"recall@{k}": metrics[f"recall@{k}"], f"ndcg@{k}": metrics[f"ndcg@{k}"],
            f"new items' share of top-{k}": float(new.mean()),
            "new items' share of catalog": len(data.cold) / len(data.bundle.item_ids)}


def _located_files(overrides: list[str], work: Path) -> tuple[LocatedFiles, dict]:
    cfg = compose_training(overrides, work)
    data = cfg.data
    return locate(hydra.utils.instantiate(data.dataset), data.data_dir), {
        "on_bad_line": data.on_bad_line, "cache_dir": data.cache_dir, "name": data.dataset.name,
        "relevance_min_rating": data.get("relevance_min_rating")}


def held_out_reviews(interactions: pd.DataFrame, cold: set[str], min_rating: float | None) -> pd.DataFrame:
    """``user_id, item_id`` (as strings) of the reviews of the ``cold`` items that count as relevant:
    all of them, or those rated at least ``min_rating`` (``data.relevance_min_rating``, as in the
    warm evaluation)."""
    keep = interactions["item_id"].isin(cold)
    if min_rating is not None:
        keep &= interactions["rating"] >= min_rating
    return interactions.loc[keep, ["user_id", "item_id"]].astype(str)


def run_cold_items(overrides: list[str], folds: int, seed: int, work: Path, group: str | None = None) -> list[dict]:
    """Train, export, grow and score one run per fold of the items (files under ``work/fold<k>``);
    returns one record per fold: ``{"fold", "new_items", "users", "pairs", "new_items_only",
    "whole_catalog", "warm_test", "minutes"}``. ``group``: the W&B group of the runs, when they log there."""
    require_fresh([work / f"fold{fold}" for fold in range(folds)], "cold.work")
    files, data = _located_files(overrides, work)
    if files.meta is None:
        raise ValueError(f"dataset {data['name']!r} has no item file: a new item is placed by its metadata "
                         "document, so the cold-item benchmark needs one (data=magazine, or data.dataset.meta=...)")
    tables = load_tables(files, data["on_bad_line"], data["cache_dir"])
    documents = documents_of(tables.items)
    parts = cold_item_folds(documents["item_id"], folds, seed)
    records = []
    for fold, cold_items in enumerate(parts):
        directory = (work / f"fold{fold}").resolve()
        cold = set(cold_items)
        warm_reviews = directory / "data" / "reviews_without_new_items.jsonl.gz"
        kept, dropped = write_without_items(files.reviews, files.review_fields, cold, warm_reviews)
        log.info("Fold %d of %d: %d items held out with %d review records (%d kept)", fold + 1, folds,
                 len(cold), dropped, kept)
        run = run_training([*overrides, f"data.dataset.name={data['name']}_cold{folds}_{fold}_seed{seed}",
                            f"data.dataset.reviews={warm_reviews}", f"data.dataset.meta={files.meta.resolve()}"],
                           directory / "run", f"cold-item fold {fold}", group=group)
        checkpoint = best_checkpoint(directory / "run")
        export = export_checkpoint(checkpoint, directory / "export")
        grown = add_items(export, documents[documents["item_id"].isin(cold)], directory / "export_grown")
        held_out = held_out_reviews(tables.interactions, cold, data["relevance_min_rating"])
        fold_data = ColdFoldData(grown, held_out, cold_items)
        records.append({
            "fold": fold, "new_items": len(fold_data.cold), "users": len(fold_data.user_ids),
            "pairs": fold_data.pairs, "new_items_only": score_new_items(fold_data),
            "whole_catalog": score_whole_catalog(fold_data),
            "warm_test": {k.removeprefix("test/"): v for k, v in run["metrics"].items()
                          if k in ("test/recall@10", "test/ndcg@10")},
            "minutes": run["minutes"],
        })
    return records


def cold_items_report(records: list[dict], command: str) -> str:
    """Markdown: the new-items-only ranking by scorer (ratios against chance from the same folds),
    the whole-catalog ranking, and each fold's size."""
    def cell(values: list[float]) -> str:
        return mean_std_cell(pd.Series(values, dtype=float), 3)

    folds = len(records)
    lines = [f"# Cold items: {folds} folds of the items", "", f"Command: `{command}`", "",
             "Each fold holds out its items with all their reviews, trains on the rest, adds the held-out "
             "items to the export by their documents alone (`recsys.export.new_items.add_items`) and ranks "
             "them for the trained users who reviewed them. Mean ± sample std over folds.", "",
             "## Ranking the new items only", "",
             "| scorer | recall@5 | recall@10 | NDCG@10 | recall@10 vs chance |", "|---|---:|---:|---:|---:|"]
    chance_recall = np.mean([r["new_items_only"][CHANCE]["recall@10"] for r in records])
    for scorer in [*COLD_SCORERS, CHANCE]:
        values = {m: [r["new_items_only"][scorer][m] for r in records] for m in ("recall@5", "recall@10", "ndcg@10")}
        ratio = np.mean(values["recall@10"]) / chance_recall if chance_recall > 0 else float("nan")
        lines.append(f"| {scorer} | {cell(values['recall@5'])} | {cell(values['recall@10'])} | "
                     f"{cell(values['ndcg@10'])} | {ratio:.2f}x |")
    lines += ["", "## The whole grown catalog, as a known user is served", "",
              "The export's ranking over every item (training items excluded); `warm test` is the same run's "
              "test split of the items it trained on, for scale.", "",
              "| metric | mean ± std |", "|---|---:|"]
    for metric in records[0]["whole_catalog"]:
        lines.append(f"| new items: {metric} | {cell([r['whole_catalog'][metric] for r in records])} |")
    for metric in records[0]["warm_test"]:
        lines.append(f"| warm test: {metric} | {cell([r['warm_test'][metric] for r in records])} |")
    lines += ["", "## Folds", "", "| fold | new items | users | held-out reviews | train minutes |",
              "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['fold']} | {r['new_items']} | {r['users']} | {r['pairs']} | {r['minutes']:.2f} |" for r in records]
    return "\n".join(lines) + "\n"
