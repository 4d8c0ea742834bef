"""Cold items (recsys.benchmarking.cold_items, scripts/benchmark_cold_items.py): item folds, the
training copy without the held-out items, the scores of a grown export, and the script end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.benchmarking.cold_items import (
    CHANCE,
    ColdFoldData,
    cold_item_folds,
    cold_items_report,
    document_neighbours,
    documents_of,
    score_new_items,
    score_whole_catalog,
    write_without_items,
)
from recsys.data.fields import AMAZON_REVIEW_FIELDS, ReviewFields
from recsys.data.readers import read_reviews
from recsys.export import load_export
from recsys.export.new_items import add_items
from tests.conftest import MAGAZINE, REPO_ROOT, script_env, tiny_reviews, write_lines


def test_item_folds_are_a_seeded_partition():
    items = [f"I{i}" for i in range(23)]
    folds = cold_item_folds(items, 5, seed=0)
    assert sorted(i for fold in folds for i in fold) == sorted(items)
    assert sorted(len(f) for f in folds) == [4, 4, 5, 5, 5]
    assert folds == cold_item_folds(list(reversed(items)), 5, seed=0)  # the input order does not matter
    assert folds != cold_item_folds(items, 5, seed=1)
    with pytest.raises(ValueError, match="cold.folds=1 is not allowed"):
        cold_item_folds(items, 1, seed=0)
    with pytest.raises(ValueError, match="3 items with a document cannot be split into 5 folds"):
        cold_item_folds(items[:3], 5, seed=0)


def test_documents_of_keeps_items_with_text_once():
    items = pd.DataFrame({"item_id": ["a", "b", "b", "c"], "title": ["A", "B", "B again", ""],
                          "brand": ["", "", "", ""], "categories": ["", "", "", ""],
                          "description": ["", "", "", "  "]})
    documents = documents_of(items)
    assert documents["item_id"].tolist() == ["a", "b"] and documents["document"].tolist() == ["A", "B"]
    assert documents_of(None).empty


@pytest.mark.parametrize("name", ["reviews.json.gz", "reviews.csv"])
def test_the_training_copy_leaves_out_exactly_the_held_out_items(tmp_path: Path, name: str):
    rows = tiny_reviews(num_users=6, num_items=8)
    source = tmp_path / name
    if name.endswith(".csv"):
        pd.DataFrame(rows).to_csv(source, index=False)
    else:
        write_lines(source, rows)
    fields = AMAZON_REVIEW_FIELDS if name.endswith(".gz") else ReviewFields(
        user="reviewerID", item="asin", rating="overall", text="reviewText", summary="summary",
        timestamp="unixReviewTime")
    cold = {"I1", "I6"}
    kept, dropped = write_without_items(source, fields, cold, tmp_path / "out" / "warm.jsonl.gz")
    full = read_reviews(source, fields=fields).table
    warm = read_reviews(tmp_path / "out" / "warm.jsonl.gz", fields=fields).table
    assert dropped == sum(row["asin"] in cold for row in rows) > 0 and kept == len(rows) - dropped
    pd.testing.assert_frame_equal(warm, full[~full["item_id"].isin(cold)].reset_index(drop=True))


def test_held_out_reviews_are_those_of_the_new_items_rated_at_least_the_relevance_threshold():
    from recsys.benchmarking.cold_items import held_out_reviews

    interactions = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u3"], "item_id": ["a", "b", "a", "c"],
                                 "rating": [5.0, 5.0, 2.0, 4.0]})
    every = held_out_reviews(interactions, {"a", "c"}, None)
    assert list(zip(every["user_id"], every["item_id"], strict=True)) == [("u1", "a"), ("u2", "a"), ("u3", "c")]
    liked = held_out_reviews(interactions, {"a", "c"}, 4.0)
    assert list(zip(liked["user_id"], liked["item_id"], strict=True)) == [("u1", "a"), ("u3", "c")]


@pytest.fixture(scope="module")
def grown_export(tiny_export, tmp_path_factory):
    """The tiny export grown by 12 new items (copies of its 10 documents and two new texts), and a
    held-out review of two new items by each of its first six trained users."""
    export, _, datamodule = tiny_export
    documents = [*datamodule.data.item_documents["document"], "a marimba of rosewood", "a kazoo in brass"]
    new = pd.DataFrame({"item_id": [f"new{i}" for i in range(len(documents))], "document": documents})
    grown = add_items(export, new, tmp_path_factory.mktemp("cold") / "grown")
    users = sorted(load_export(grown).reviews["user_id"].unique())[:6]
    held_out = pd.DataFrame({"user_id": [u for u in users for _ in range(2)],
                             "item_id": [f"new{(3 * k + j) % 12}" for k in range(6) for j in (0, 5)]})
    held_out = pd.concat([held_out, pd.DataFrame({"user_id": ["not-a-trained-user"], "item_id": ["new0"]})])
    return ColdFoldData(grown, held_out, new["item_id"].tolist()), held_out.iloc[:-1]


def _recall_at(scores: np.ndarray, new_ids: list[str], relevant: list[set[str]], k: int) -> float:
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    found = [len({new_ids[j] for j in row} & rel) / len(rel) for row, rel in zip(ranked, relevant, strict=True)]
    return float(np.mean(found))


def test_new_items_are_scored_for_the_trained_users_who_reviewed_them(grown_export):
    data, held_out = grown_export
    bundle = data.bundle
    assert data.user_ids == sorted(held_out["user_id"].unique()) and data.pairs == 12  # the untrained user left out
    assert [bundle.item_ids[i] for i in data.cold.tolist()] == [f"new{i}" for i in range(12)]
    results = score_new_items(data)
    # The two-tower ranking of the new items, computed here from the export's vectors.
    new_ids = [f"new{i}" for i in range(12)]
    users = bundle.user_vectors[[list(bundle.user_ids).index(u) for u in data.user_ids]].numpy()
    scores = users @ bundle.item_vectors[-12:].numpy().T
    relevant = [set(held_out.loc[held_out["user_id"] == u, "item_id"]) for u in data.user_ids]
    for k in (5, 10):
        assert results["two-tower (text part of the item tower)"][f"recall@{k}"] == pytest.approx(
            _recall_at(scores, new_ids, relevant, k))
    # Chance: k of the 12 new items, whichever two are relevant.
    assert results[CHANCE]["recall@5"] == pytest.approx(5 / 12, abs=0.05)
    assert results[CHANCE]["recall@10"] == pytest.approx(10 / 12, abs=0.05)
    # Document kNN: a new item that copies a document the user reviewed scores at least its mean.
    knn = document_neighbours(data, data.cold).numpy()
    reviewed = [bundle.reviews.loc[bundle.reviews["user_id"] == u, "item_id"] for u in data.user_ids]
    for row, items in enumerate(reviewed):
        copies = [int(str(i).removeprefix("I")) for i in items]  # item I<n> is the n-th document
        assert knn[row, copies].max() >= knn[row].mean()


def test_the_whole_catalog_ranking_counts_the_new_items(grown_export):
    data, held_out = grown_export
    whole = score_whole_catalog(data)
    _, top = data.recommender.search(data.user_ids, k=10)
    assert whole["new items' share of top-10"] == pytest.approx(float((top >= 10).mean()))
    assert whole["new items' share of catalog"] == pytest.approx(12 / 22)
    relevant = [{data.recommender.item_position[i] for i in held_out.loc[held_out["user_id"] == u, "item_id"]}
                for u in data.user_ids]
    found = [len(set(row) & items) / 2 for row, items in zip(top, relevant, strict=True)]
    assert whole["recall@10"] == pytest.approx(np.mean(found))


def test_the_report_gives_mean_and_sample_std_over_folds(grown_export):
    data, _ = grown_export
    records = []
    for fold, recall in enumerate((0.2, 0.4)):
        scores = score_new_items(data)
        scores["two-tower (text part of the item tower)"]["recall@10"] = recall
        records.append({"fold": fold, "new_items": 12, "users": 6, "pairs": 12, "new_items_only": scores,
                        "whole_catalog": score_whole_catalog(data), "warm_test": {"recall@10": 0.5}, "minutes": 0.1})
    report = cold_items_report(records, "cmd")
    chance = np.mean([r["new_items_only"][CHANCE]["recall@10"] for r in records])
    row = next(line for line in report.splitlines() if line.startswith("| two-tower"))
    assert "| 0.300 ± 0.141 |" in row and row.endswith(f"| {0.3 / chance:.2f}x |")
    assert "| warm test: recall@10 | 0.500 ± 0.000 |" in report and "Command: `cmd`" in report


def _script(*arguments: str, cache: Path, data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "benchmark_cold_items.py"), *arguments],
                          cwd=REPO_ROOT, env=script_env(cache, data_dir), capture_output=True, text=True,
                          timeout=900)


def test_bad_options_and_a_dataset_without_item_file_are_refused(tmp_path: Path, real_data_dir: Path):
    result = _script("cold.fold=2", cache=tmp_path, data_dir=real_data_dir)
    assert result.returncode == 2 and "cold.fold is not an option" in result.stderr + result.stdout
    result = _script("data=musical_instruments", f"cold.out={tmp_path / 'out'}", f"cold.work={tmp_path / 'runs'}",
                     cache=tmp_path, data_dir=real_data_dir)
    assert result.returncode == 2 and "has no item file" in result.stderr + result.stdout
    assert not (tmp_path / "runs" / "fold0").exists()


@pytest.mark.slow
def test_cold_item_benchmark_on_magazine(tmp_path: Path, real_data_dir: Path):
    out, work = tmp_path / "cold", tmp_path / "runs"
    result = _script("data=magazine", "cold.folds=2", f"cold.out={out}", f"cold.work={work}", "trainer.max_epochs=1",
                     "logger=none", cache=tmp_path / "cache", data_dir=real_data_dir)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    records = json.loads((out / "cold_items.json").read_text())
    magazine = read_reviews(real_data_dir / MAGAZINE.subdir / MAGAZINE.reviews).table
    held_out = []
    for record in records:
        fold = work / f"fold{record['fold']}"
        before, grown = load_export(fold / "export"), load_export(fold / "export_grown")
        new = set(grown.item_ids[len(before.item_ids):])
        held_out.append(new)
        # Never leak the held-out items: not in the trained catalog, nor in any training review.
        assert not new & set(before.item_ids) and not new & set(before.reviews["item_id"])
        assert len(new) == record["new_items"] and record["users"] > 100
        assert record["pairs"] == int((magazine["item_id"].isin(new)
                                       & magazine["user_id"].isin(set(before.reviews["user_id"]))).sum())
        scores = record["new_items_only"]
        assert scores["two-tower (text part of the item tower)"]["recall@10"] > scores[CHANCE]["recall@10"]
        assert scores["document kNN (pretrained MiniLM)"]["recall@10"] > scores[CHANCE]["recall@10"]
    assert not held_out[0] & held_out[1]  # each item is held out once
    assert "Ranking the new items only" in (out / "cold_items.md").read_text()
