"""The learning curves are recorded by a callback, whatever the loggers (recsys.training.callbacks.LearningCurves)."""

import json
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from recsys.training.callbacks import LearningCurves
from recsys.training.run import train
from tests.conftest import TINY_BERT, tiny_reviews, write_lines
from tests.training.test_schedule import config


class BatchMeanLoss(pl.LightningModule):
    """Hand-checkable: a batch's loss is the mean of its values; validation logs 1 / (epoch + 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return batch.float().mean() + 0 * self.weight

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        self.log("val/rmse", 1.0 / (self.current_epoch + 1))
        self.log("val/recall@10", 0.1 * (self.current_epoch + 1))
        self.log("val/other", 7.0)  # not a curve

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(torch.arange(1, 6), batch_size=2)  # batches [1, 2], [3, 4], [5]

    def val_dataloader(self) -> DataLoader:
        return DataLoader(torch.arange(2), batch_size=2)


def fit(epochs: int, callbacks: list, ckpt_path: str | None = None, root=None) -> None:
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=1, callbacks=callbacks,
                         enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
                         default_root_dir=root)
    trainer.fit(BatchMeanLoss(), ckpt_path=ckpt_path)


def test_every_batch_loss_the_epoch_means_weighted_by_batch_size_and_validation_by_epoch():
    curves = LearningCurves()
    fit(2, [curves])  # no logger at all; the sanity check's validation is not a point
    frame = curves.frame
    losses = frame[["epoch", "step", "train/loss"]].dropna().values.tolist()
    assert losses == [[0, 0, 1.5], [0, 1, 3.5], [0, 2, 5.0], [1, 3, 1.5], [1, 4, 3.5], [1, 5, 5.0]]
    # (1.5 x 2 + 3.5 x 2 + 5 x 1) / 5 = 3.0; the mean of the three batches' losses would be 3.33.
    assert frame[["epoch", "step", "train/epoch_loss"]].dropna().values.tolist() == [[0, 2, 3.0], [1, 5, 3.0]]
    validation = frame[["epoch", "step", "val/rmse", "val/recall@10"]].dropna().values.ravel().tolist()
    assert validation == pytest.approx([0, 2, 1.0, 0.1, 1, 5, 0.5, 0.2])
    assert "val/other" not in frame.columns


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")  # the resumed run's own
def test_a_resumed_run_has_the_curves_of_an_uninterrupted_one(tmp_path):
    whole = LearningCurves()
    fit(3, [whole])
    last = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    fit(1, [LearningCurves(), last], root=tmp_path)
    resumed = LearningCurves()
    fit(3, [resumed, ModelCheckpoint(dirpath=tmp_path, save_last=True)], ckpt_path=str(tmp_path / "last.ckpt"),
        root=tmp_path)
    pd.testing.assert_frame_equal(resumed.frame, whole.frame)


def train_tiny(tmp_path: Path, monkeypatch, *overrides: str) -> Path:
    """``train()`` on a tiny dataset with a tiny random encoder (seconds); its run directory."""
    write_lines(tmp_path / "data" / "tiny" / "reviews.json.gz", tiny_reviews())
    out = tmp_path / "run"
    out.mkdir(exist_ok=True)  # a test may put files there first
    monkeypatch.setattr("recsys.training.run.run_dir", lambda cfg: out)  # wherever an earlier test left Hydra
    encoder = ",".join(f"{key}:{value}" for key, value in TINY_BERT.items())
    train(config("data.dataset.name=tiny", "data.dataset.subdir=tiny", "data.dataset.reviews=reviews.json.gz",
                 f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}",
                 f"+model.net.encoder_config={{{encoder}}}", "trainer.max_epochs=2", "data.batch_size=8",
                 "data.item_max_tokens=32", "data.review_max_tokens=32", "model.module.ease_fusion=0",
                 "model.module.loss.distill_weight=0", f"trainer.default_root_dir={out}",
                 f"callbacks.checkpoint.dirpath={out / 'checkpoints'}",
                 f"callbacks.rating_checkpoint.dirpath={out / 'checkpoints'}",
                 f"callbacks.last_checkpoint.dirpath={out / 'checkpoints'}",
                 *overrides))
    return out


def test_a_run_without_a_csv_logger_still_draws_its_learning_curves(tmp_path, monkeypatch):
    out = train_tiny(tmp_path, monkeypatch, "logger=none")
    assert not (out / "csv").exists()
    assert (out / "learning_curves.png").stat().st_size > 10_000
    curves = pd.read_csv(out / "learning_curves.csv")
    batches = curves["train/loss"].notna().sum()
    assert batches > 2 and batches % 2 == 0 and curves["train/epoch_loss"].notna().sum() == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert curves["val/rmse"].dropna().iloc[-1] == pytest.approx(metrics["val/rmse"])
    assert curves["val/recall@10"].dropna().iloc[-1] == pytest.approx(metrics["val/recall@10"])


def test_a_checkpoint_inside_an_epoch_keeps_its_open_batches():
    from types import SimpleNamespace

    curves = LearningCurves()
    trainer = SimpleNamespace(current_epoch=0)
    for loss, pairs in ((2.0, 3), (4.0, 1)):
        curves.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, torch.zeros(pairs), 0)
    assert curves.frame.empty  # the epoch is still open
    restored = LearningCurves()
    restored.load_state_dict(curves.state_dict())
    restored.on_train_batch_end(trainer, None, {"loss": torch.tensor(6.0)}, torch.zeros(2), 0)
    restored.on_train_epoch_end(trainer, None)
    assert restored.frame["train/loss"].dropna().tolist() == [2.0, 4.0, 6.0]
    # (2 x 3 + 4 x 1 + 6 x 2) / 6 pairs
    assert restored.frame[["step", "train/epoch_loss"]].dropna().values.tolist() == [[2, 22 / 6]]
