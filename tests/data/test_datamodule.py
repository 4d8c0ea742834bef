import logging
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data.batches import PairBatch
from recsys.data.datamodule import ReviewDataModule
from recsys.data.errors import DatasetNotFoundError
from recsys.data.splits import SplitSpec


def make_datamodule(files, data_dir: Path, cache: Path, **overrides) -> ReviewDataModule:
    settings = dict(dataset=files, data_dir=data_dir, cache_dir=cache, split=SplitSpec(seed=0),
                    max_reviews=3, num_negatives=2, batch_size=4, eval_batch_size=4, item_max_tokens=32)
    settings.update(overrides)
    dm = ReviewDataModule(**settings)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def check_batch(batch: PairBatch, dm: ReviewDataModule, split: str, positions: np.ndarray) -> None:
    data = dm.data
    pairs = data.pairs[split]
    b, n = len(positions), dm.num_negatives
    h = batch.history_reviews.shape[1]
    u = batch.batch_items.shape[0]
    assert batch.user.shape == batch.item.shape == batch.rating.shape == (b,)
    assert batch.negatives.shape == batch.negative_slot.shape == (b, n)
    assert batch.history_items.shape == batch.history_ratings.shape == batch.history_mask.shape == (b, h)
    assert 1 <= h <= dm.max_reviews
    assert batch.item_input_ids.shape[0] == batch.item_attention_mask.shape[0] == u
    assert batch.user_has_batch_item.shape == (b, u)
    assert batch.history_mask.dtype == torch.bool and batch.rating.dtype == torch.float32

    assert batch.user.tolist() == pairs.user[positions].tolist()
    assert batch.item.tolist() == pairs.item[positions].tolist()
    assert torch.equal(batch.batch_items[batch.item_slot], batch.item)
    assert torch.equal(batch.batch_items[batch.negative_slot], batch.negatives)
    assert len(set(batch.batch_items.tolist())) == u
    # Tokens of batch items are their item documents' tokens.
    for slot, item in enumerate(batch.batch_items.tolist()):
        length = int(batch.item_attention_mask[slot].sum())
        assert batch.item_input_ids[slot, :length].tolist() == dm.item_tokens.row(item).tolist()
    # No negative is a training item of the user, nor the pair's own item.
    users, negatives = batch.user.numpy(), batch.negatives.numpy()
    assert not data.train_items.contains(users[:, None], negatives).any()
    assert not (negatives == batch.item.numpy()[:, None]).any()
    # Accidental hits are flagged: the user's training items and the pair's own item.
    expected_hits = data.train_items.contains(users[:, None], batch.batch_items.numpy()[None, :])
    expected_hits |= batch.batch_items.numpy()[None, :] == batch.item.numpy()[:, None]
    assert torch.equal(batch.user_has_batch_item, torch.from_numpy(expected_hits))
    # History: the user's training reviews, most recent last, never the pair's own review.
    train = data.train_reviews
    for row, position in enumerate(positions):
        reviews = batch.history_reviews[row][batch.history_mask[row]].numpy()
        own = pairs.review[position]
        assert own not in reviews
        assert (train["user_id"].to_numpy()[reviews] == data.user_ids[pairs.user[position]]).all()
        assert (np.diff(train["timestamp"].to_numpy()[reviews]) >= 0).all()
        assert batch.history_items[row][batch.history_mask[row]].tolist() == data.pairs["train"].item[reviews].tolist()
        expected = data.histories.of(int(pairs.user[position]), dm.max_reviews, exclude_review=int(own))
        assert reviews.tolist() == expected.tolist()


def test_batches_have_documented_shapes_and_contents(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm = make_datamodule(files, data_dir, tmp_path / "cache")
    assert (dm.num_users, dm.num_items) == (6, 8)
    for split, loader in (("train", dm.train_dataloader()), ("val", dm.val_dataloader())):
        batches = list(loader)
        assert [len(b) for b in batches[:-1]] == [4] * (len(batches) - 1)
        assert sum(len(b) for b in batches) == len(dm.data.pairs[split])
    collate = dm.collator("train")
    positions = np.arange(len(dm.data.pairs["train"]))
    for start in range(0, len(positions), 5):
        chunk = positions[start:start + 5]
        check_batch(collate(chunk.tolist()), dm, "train", chunk)
    val_positions = np.arange(len(dm.data.pairs["val"]))
    check_batch(dm.collator("val")(val_positions.tolist()), dm, "val", val_positions)


def test_training_negatives_change_while_evaluation_negatives_are_fixed(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm = make_datamodule(files, data_dir, tmp_path / "cache", num_negatives=3)
    first = torch.cat([b.negatives for b in dm.val_dataloader()])
    second = torch.cat([b.negatives for b in dm.val_dataloader()])
    assert torch.equal(first, second)
    collate = dm.collator("train")
    positions = list(range(len(dm.data.pairs["train"])))
    assert not torch.equal(collate(positions).negatives, collate(positions).negatives)
    # One stream per datamodule, saved in checkpoints: restoring its state repeats the draws.
    state = dm.state_dict()
    expected = dm.collator("train")(positions).negatives
    dm.load_state_dict(state)
    assert torch.equal(dm.collator("train")(positions).negatives, expected)
    # Same seed, same stream: a new datamodule repeats the first draw of the first one.
    fresh = make_datamodule(files, data_dir, tmp_path / "cache", num_negatives=3)
    again = make_datamodule(files, data_dir, tmp_path / "cache", num_negatives=3)
    assert torch.equal(fresh.collator("train")(positions).negatives, again.collator("train")(positions).negatives)


def test_missing_dataset_says_where_and_how(tmp_path):
    from recsys.data.sources import DatasetFiles

    files = DatasetFiles(name="nowhere", subdir="nowhere", reviews="reviews_x.json.gz", meta="meta_x.json.gz")
    dm = ReviewDataModule(dataset=files, data_dir=tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetNotFoundError) as caught:
        dm.prepare_data()
    message = str(caught.value)
    assert str(tmp_path / "nowhere") in message
    assert "reviews_x.json.gz" in message and "meta_x.json.gz" in message
    assert "RECSYS_DATA_DIR" in message and "McAuley" in message


def test_bad_settings_name_the_config_key(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    with pytest.raises(ValueError, match="data.batch_size"):
        ReviewDataModule(dataset=files, data_dir=data_dir, cache_dir=tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="data.on_bad_line"):
        ReviewDataModule(dataset=files, data_dir=data_dir, cache_dir=tmp_path, on_bad_line="warn")
    for name, value in (("batch_size", "abc"), ("num_workers", -1), ("max_reviews", 2.5)):
        with pytest.raises(ValueError, match=rf"^data.{name}={value!r} is not allowed: give a whole number >= [01]$"):
            ReviewDataModule(dataset=files, data_dir=data_dir, cache_dir=tmp_path, **{name: value})
    for threshold in (0.5, 6.0, "four"):  # below 1 it keeps every item (null says so), above 5 none
        with pytest.raises(ValueError, match=rf"^data.relevance_min_rating={threshold!r} is not allowed: .*1 to 5"):
            ReviewDataModule(dataset=files, data_dir=data_dir, cache_dir=tmp_path, relevance_min_rating=threshold)
    assert ReviewDataModule(dataset=files, data_dir=data_dir, cache_dir=tmp_path,
                            relevance_min_rating=5).relevance_min_rating == 5
    # Past the encoder's 512 positions, refused before the data is read (not an index error when encoding).
    for name in ("item_max_tokens", "review_max_tokens"):
        too_long = ReviewDataModule(dataset=files, data_dir=tmp_path / "nowhere", cache_dir=tmp_path, **{name: 513})
        with pytest.raises(ValueError, match=rf"^data.{name}=513 is more than the encoder reads: 512 tokens"):
            too_long.prepare_data()
    ReviewDataModule(dataset=files, data_dir=data_dir, cache_dir=tmp_path, item_max_tokens=512).prepare_data()


def test_temporal_split_datamodule_holds_out_each_users_latest(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm = make_datamodule(files, data_dir, tmp_path / "cache", split=SplitSpec(strategy="temporal"))
    table = dm.data.interactions
    latest = table.sort_values(["user_id", "timestamp"]).groupby("user_id").tail(1)
    assert (latest["split"] == "test").all()
    assert (table["split"] == "test").sum() == dm.num_users


def test_data_is_prepared_once_per_module(tiny_dataset, tmp_path):
    # Lightning calls prepare_data at every fit, validate and test: each would re-read every cache.
    files, data_dir = tiny_dataset
    dm = make_datamodule(files, data_dir, tmp_path / "cache")
    data, items = dm.data, dm.item_tokens
    dm.prepare_data()
    dm.setup("test")
    assert dm.data is data and dm.item_tokens is items


def test_what_setup_builds_is_refused_before_it_with_what_to_call(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm = ReviewDataModule(dataset=files, data_dir=data_dir, cache_dir=tmp_path / "cache", split=SplitSpec(seed=0))
    reads = {"prepared": lambda: dm.prepared, "item_tokens": lambda: dm.item_tokens,
             "review_tokens": lambda: dm.review_tokens, "num_items": lambda: dm.num_items, "catalog": dm.catalog}
    for name, read in reads.items():
        with pytest.raises(RuntimeError, match=r"not set up: call prepare_data\(\) and setup\(\) first"):
            read()
            pytest.fail(f"{name} was read before setup")
    dm.prepare_data()
    dm.setup("fit")
    assert dm.prepared is dm.data
    assert len(dm.item_tokens) == dm.num_items == 8
    assert len(dm.review_tokens) == len(dm.prepared.pairs["train"]) == len(dm.catalog().review_tokens)


def test_negatives_drawn_in_workers_depend_on_the_batch_not_on_the_worker_count(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    epochs = {}
    for workers in (1, 2):
        dm = make_datamodule(files, data_dir, tmp_path / "cache", num_negatives=3, num_workers=workers)
        torch.manual_seed(0)  # the shuffle
        loader = dm.train_dataloader()
        epochs[workers] = [[(b.user.tolist(), b.negatives.tolist()) for b in loader] for _ in range(2)]
    assert epochs[1] == epochs[2]
    assert epochs[1][0] != epochs[1][1]  # another shuffle, other batches, other negatives
    # Each batch's own stream: one batch's pairs drawn again give the same negatives, other pairs others.
    collate = make_datamodule(files, data_dir, tmp_path / "cache", num_negatives=3).collator("train")
    positions = np.arange(len(collate.pairs))
    with patch("recsys.data.batches.get_worker_info", return_value=object()):
        assert torch.equal(collate(positions.tolist()).negatives, collate(positions.tolist()).negatives)
        reversed_order = collate(positions[::-1].tolist()).negatives.flip(0)
        assert not torch.equal(collate(positions.tolist()).negatives, reversed_order)


def test_cache_files_that_cannot_be_read_are_rebuilt_with_a_warning(tiny_dataset, tmp_path, caplog):
    # A parsed table, the split or the tokens cut short (a full disk, a copy cut off) ended the run
    # in pyarrow's "Parquet magic bytes not found"; each is a cache that the run can make again.
    files, data_dir = tiny_dataset
    cache = tmp_path / "cache"
    first = make_datamodule(files, data_dir, cache)
    damaged = sorted(cache.rglob("*.parquet")) + sorted(cache.rglob("*.json"))
    assert {path.name for path in damaged} >= {"interactions.parquet", "read_reports.json",
                                               "random-v2-seed0-0.8-0.1-0.1.parquet"}
    assert any(path.name.startswith("tokens-") for path in damaged)
    for path in damaged:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="recsys.cache_files"):
        again = make_datamodule(files, data_dir, cache)
    for path in damaged:
        assert f"{path}" in caplog.text
        assert path.exists()  # rebuilt whole
    assert "removed; this run rebuilds it" in caplog.text
    pd.testing.assert_frame_equal(again.data.interactions, first.data.interactions)
    assert np.array_equal(again.item_tokens.ids, first.item_tokens.ids)
    assert np.array_equal(again.review_tokens.ids, first.review_tokens.ids)
    caplog.clear()
    make_datamodule(files, data_dir, cache)
    assert "Cannot read" not in caplog.text
