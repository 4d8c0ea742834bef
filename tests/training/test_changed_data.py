"""A checkpoint records the fingerprints of the data it was trained on, and is never evaluated or
resumed on other data: a new split of changed data holds out interactions the model trained on.
On another machine, its data and caches are looked for in that machine's folders."""

import json
import logging
import shutil

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from recsys.data.datamodule import FINGERPRINTS_KEY
from recsys.data.errors import ChangedDataError, DatasetNotFoundError
from recsys.data.readers import read_reviews
from recsys.data.splits import SplitSpec, assign_split
from recsys.export.writer import export_checkpoint
from recsys.training.run import evaluate
from tests.conftest import tiny_reviews, write_lines
from tests.training.test_learning_curves import train_tiny


def split_pairs(rows: list[dict], path) -> dict[str, set[tuple[str, str]]]:
    """The (user, item) pairs of each split that the random split of seed 0 gives ``rows``."""
    table = read_reviews(write_lines(path, rows)).table
    names = assign_split(table, SplitSpec(seed=0))
    return {name: set(zip(table["user_id"][names == name], table["item_id"][names == name], strict=True))
            for name in ("train", "test")}


def test_a_checkpoint_is_refused_on_changed_data_and_accepted_on_its_own(tmp_path, monkeypatch, caplog):
    run = train_tiny(tmp_path / "a", monkeypatch, "logger=none")
    (best,) = (run / "checkpoints").glob("epoch*.ckpt")  # the one the run tested
    recorded = torch.load(best, weights_only=True)["ReviewDataModule"][FINGERPRINTS_KEY]
    (manifest,) = (tmp_path / "a" / "cache").glob("tiny/*/splits/random-*.json")
    written = json.loads(manifest.read_text())
    assert recorded == {"data": written["data_fingerprint"], "split": written["split_fingerprint"]}
    own = evaluate(best, "test")
    tested = json.loads((run / "metrics.json").read_text())
    assert own == pytest.approx({name: tested[name] for name in own}, abs=1e-6)

    # The same reviews in another order: the seeded split is another, and holds out training pairs.
    rows = tiny_reviews()
    before, after = split_pairs(rows, tmp_path / "before.json"), split_pairs(rows[::-1], tmp_path / "after.json")
    assert after["test"] & before["train"]
    write_lines(tmp_path / "a" / "data" / "tiny" / "reviews.json.gz", rows[::-1])
    with pytest.raises(ChangedDataError, match=rf"{best.name} does not match dataset 'tiny' as it is read now: the "
                       r"interactions it was trained on have changed \(fingerprint [0-9a-f]{12} at training, "
                       r"[0-9a-f]{12} now\)\. Evaluating on it would count interactions that the model trained on"):
        evaluate(best, "test")

    # Export goes on, with a warning: serving reads the users' histories of the data as it is now.
    with caplog.at_level(logging.WARNING, logger="recsys.training.checkpoints"):
        exported = export_checkpoint(best, tmp_path / "export")
    assert any("does not match dataset 'tiny'" in record.getMessage() and "The export reads the data as it is now"
               in record.getMessage() for record in caplog.records)
    assert len(pd.read_parquet(exported / "users.parquet")) == 6

    # Resuming on the changed data is refused when Lightning restores the data module's state.
    monkeypatch.setattr("tests.training.test_learning_curves.tiny_reviews", lambda: rows[::-1])
    with pytest.raises(ChangedDataError, match=r"^The checkpoint to resume does not match dataset 'tiny'.*Resuming"):
        train_tiny(tmp_path / "b", monkeypatch, "logger=none", f"ckpt_path={best}", "trainer.max_epochs=3")

    # On its own data again, it evaluates as before; a checkpoint of an earlier recsys (no
    # fingerprints) is not checked.
    write_lines(tmp_path / "a" / "data" / "tiny" / "reviews.json.gz", rows)
    assert evaluate(best, "test") == pytest.approx(own)
    checkpoint = torch.load(best, weights_only=True)
    del checkpoint["ReviewDataModule"][FINGERPRINTS_KEY]
    torch.save(checkpoint, tmp_path / "older.ckpt")
    write_lines(tmp_path / "a" / "data" / "tiny" / "reviews.json.gz", rows[::-1])
    with caplog.at_level(logging.INFO, logger="recsys.training.checkpoints"):
        evaluate(tmp_path / "older.ckpt", "test", output_dir=tmp_path / "older")
    assert any("records no fingerprint of its data" in record.getMessage() for record in caplog.records)


def test_a_checkpoint_from_another_machine_reads_this_machines_folders(tmp_path, monkeypatch):
    run = train_tiny(tmp_path / "a", monkeypatch, "logger=none")
    (best,) = (run / "checkpoints").glob("epoch*.ckpt")
    tested = json.loads((run / "metrics.json").read_text())
    # The training machine's data and cache folders are not here; this machine's paths say where they are.
    (tmp_path / "here").mkdir()
    (tmp_path / "a" / "data").rename(tmp_path / "here" / "data")
    with pytest.raises(DatasetNotFoundError, match=rf"Looked in: {tmp_path / 'a' / 'data'}"):
        evaluate(best, "test")
    shutil.rmtree(tmp_path / "a" / "cache")
    here = OmegaConf.create({"data_dir": str(tmp_path / "here" / "data"),
                             "cache_dir": str(tmp_path / "here" / "cache")})
    metrics = evaluate(best, "test", paths=here)
    assert metrics == pytest.approx({name: tested[name] for name in metrics}, abs=1e-6)
    assert list((tmp_path / "here" / "cache").glob("tiny/*/splits/random-*.json"))
    assert not (tmp_path / "a" / "cache").exists()
    exported = export_checkpoint(best, tmp_path / "export", paths=here)
    assert len(pd.read_parquet(exported / "users.parquet")) == 6
    nowhere = OmegaConf.create({"data_dir": str(tmp_path / "nowhere"), "cache_dir": str(tmp_path / "here" / "cache")})
    with pytest.raises(DatasetNotFoundError, match=rf"Looked in: {tmp_path / 'nowhere'}"):
        evaluate(best, "test", paths=nowhere)
