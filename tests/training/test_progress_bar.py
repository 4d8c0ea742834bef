"""The training progress bar shows the run's figures, not the logger's version (callbacks.RunProgressBar)."""

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger

from recsys.training.callbacks import LearningCurves, RunProgressBar, run_progress_bar
from tests.training.test_learning_curves import BatchMeanLoss


def bar_metrics(bar: RichProgressBar, root) -> dict:
    module = BatchMeanLoss()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=CSVLogger(root), callbacks=[bar],
                         enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=1)
    trainer.fit(module)
    return bar.get_metrics(trainer, module)


def test_the_bar_leaves_out_the_loggers_version(tmp_path):
    assert "v_num" in bar_metrics(RichProgressBar(), tmp_path / "lightning")  # Lightning's own bar shows it
    assert "v_num" not in bar_metrics(RunProgressBar(), tmp_path / "ours")


def test_a_progress_bar_among_the_callbacks_is_kept():
    assert [type(bar) for bar in run_progress_bar([LearningCurves()])] == [RunProgressBar]
    assert run_progress_bar([LearningCurves(), TQDMProgressBar()]) == []
