"""The pipeline on the real Amazon data in ../shared/data (skipped when it is absent)."""

from pathlib import Path

import numpy as np
import pytest

from recsys.data.datamodule import ReviewDataModule
from recsys.data.prepared import PreparedData
from recsys.data.readers import read_reviews
from recsys.data.splits import SplitSpec
from recsys.data.texts import build_item_documents
from tests.conftest import MAGAZINE, MUSICAL_INSTRUMENTS
from tests.data.test_datamodule import check_batch

MIN_LEAK_CHARS = 40  # shorter held-out texts ("Great strings!") may legitimately repeat in training


@pytest.fixture(scope="module")
def mi(real_data_dir: Path, tmp_path_factory) -> ReviewDataModule:
    dm = ReviewDataModule(dataset=MUSICAL_INSTRUMENTS, data_dir=real_data_dir,
                          cache_dir=tmp_path_factory.mktemp("cache"), split=SplitSpec(seed=0))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def held_out_texts(data: PreparedData) -> set[str]:
    """Held-out review texts that can only be in a document by leaking: long enough to be
    distinctive and not inside any training review (some users post one text for two variants
    of a product; the training copy may rightly be in the documents)."""
    table = data.interactions
    train = table[table["split"] == "train"]
    train_text = "\x00".join(train["text"].tolist() + train["summary"].tolist())
    held = table[table["split"] != "train"]
    return {t for t in held["text"] if len(t) >= MIN_LEAK_CHARS and t not in train_text}


def leaks(texts: set[str], documents: list[str]) -> list[str]:
    """Held-out texts found inside any document."""
    joined = "\x00".join(documents)
    return [t for t in texts if t in joined]


def test_musical_instruments_counts(real_data_dir: Path):
    result = read_reviews(real_data_dir / MUSICAL_INSTRUMENTS.subdir / MUSICAL_INSTRUMENTS.reviews)
    table = result.table
    assert (len(table), table["user_id"].nunique(), table["item_id"].nunique()) == (10_261, 1_429, 900)
    assert result.report.rows_skipped == 0 and result.report.duplicates_dropped == 0


def test_random_split_of_musical_instruments(mi: ReviewDataModule):
    counts = mi.data.interactions["split"].value_counts().to_dict()
    assert counts == {"train": 8_208, "val": 1_026, "test": 1_027}
    # The protocol of the published baselines: the global training mean scores RMSE 0.893 on test.
    table = mi.data.interactions
    mean = table.loc[table["split"] == "train", "rating"].mean()
    test = table.loc[table["split"] == "test", "rating"]
    assert float(np.sqrt(((test - mean) ** 2).mean())) == pytest.approx(0.8933, abs=5e-4)
    assert (mi.num_users, mi.num_items) == (1_429, 900)


def test_no_held_out_review_reaches_histories_or_item_documents(mi: ReviewDataModule):
    data = mi.data
    texts = held_out_texts(data)
    assert len(texts) > 1_500  # the check covers most of the 2,052 held-out reviews
    # User histories point into the training-review table only, and hold only training text.
    assert len(data.review_texts) == len(data.train_reviews) == 8_208
    assert set(data.train_reviews["text"]) <= set(data.interactions.loc[data.interactions["split"] == "train", "text"])
    assert leaks(texts, data.review_texts) == []
    assert leaks(texts, data.item_documents["document"].tolist()) == []
    # And what the encoder reads: the cached tokens decode to documents without held-out text.
    decoded = [mi.tokenizer.decode(mi.item_tokens.row(i), skip_special_tokens=True) for i in range(mi.num_items)]
    lowered = {t.lower() for t in texts}
    assert not any(t in d for d in decoded for t in list(lowered)[:200])


def test_the_leak_check_catches_documents_built_from_all_reviews(mi: ReviewDataModule):
    data = mi.data
    everything = data.interactions.drop(columns="split")
    # Shorter budgets than 256 tokens would hide most texts; give the leaky build plenty.
    leaky = build_item_documents(data.item_ids, everything, None, max_tokens=100_000)
    assert len(leaks(held_out_texts(data), leaky["document"].tolist())) > 1_000


def test_every_training_pair_history_excludes_its_own_review(mi: ReviewDataModule):
    collate = mi.collator("train")
    positions = np.arange(len(mi.data.pairs["train"]))
    for start in range(0, len(positions), 512):
        batch = collate(positions[start:start + 512].tolist())
        own = mi.data.pairs["train"].review[positions[start:start + 512]]
        hits = (batch.history_reviews.numpy() == own[:, None]) & batch.history_mask.numpy()
        assert not hits.any()


def test_real_batches_are_well_formed(mi: ReviewDataModule):
    for split in ("train", "test"):
        positions = np.arange(64) * 7
        check_batch(mi.collator(split)(positions.tolist()), mi, split, positions)
    batch = next(iter(mi.train_dataloader()))
    assert batch.item_input_ids.shape[1] <= mi.item_max_tokens


def test_magazine_drops_duplicates_and_uses_metadata(real_data_dir: Path, tmp_path: Path):
    dm = ReviewDataModule(dataset=MAGAZINE, data_dir=real_data_dir, cache_dir=tmp_path, split=SplitSpec(seed=0))
    dm.prepare_data()
    dm.setup("fit")
    data = dm.data
    reviews_report = data.reports[0]
    assert reviews_report.lines_read == 2_375 and reviews_report.duplicates_dropped == 73
    assert len(data.interactions) == 2_302
    assert not data.interactions.duplicated(["user_id", "item_id"]).any()
    assert (data.num_users, data.num_items) == (348, 157)
    docs = data.item_documents.set_index("item_id")
    assert (docs["source"] == "metadata").sum() == 151
    assert "<span" not in " ".join(docs["document"])
    # An item's description is its document's text; items without a meta row use their reviews.
    assert "MAXIMUM PC is the ultimate upgrade for the savvy PC owners" in docs.loc["B00005N7P0", "document"]
    assert docs.loc["B00005N7P0", "document"].startswith("Future US, Inc. | Magazine Subscriptions > Technology")
    for missing in ("B000IMVNQU", "B00EZB37X2"):
        assert docs.loc[missing, "source"] in {"reviews", "empty"}
