"""The run's two checkpoints: the best-ranking one and the lowest-validation-RMSE (rating) one."""

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from recsys.training.loggers import usable_callbacks
from recsys.training.run import evaluate_rating_checkpoint, monitoring_checkpoint, rating_checkpoint_path
from tests.training.test_module import tiny_setup


class ValidationRmse(pl.Callback):
    """Records each epoch's validation RMSE."""

    def __init__(self) -> None:
        self.by_epoch: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:  # after validation
        self.by_epoch.append(float(trainer.callback_metrics["val/rmse"]))


def test_the_rating_checkpoint_is_the_lowest_validation_rmse_epoch_and_its_test_rmse_is_reported(
        tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=0)
    directory = tmp_path / "checkpoints"
    ranking = ModelCheckpoint(dirpath=directory, filename="epoch{epoch:02d}", auto_insert_metric_name=False,
                              monitor="val/recall@5", mode="max")
    rating = ModelCheckpoint(dirpath=directory, filename="rating-epoch{epoch:02d}", auto_insert_metric_name=False,
                             monitor="val/rmse", mode="min")
    recorded = ValidationRmse()
    fit = pl.Trainer(max_epochs=8, accelerator="cpu", logger=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, callbacks=[ranking, rating, recorded])
    fit.fit(module, dm)
    last_epoch = fit.test(module, dm, verbose=False)[0]["test/rmse"]

    assert monitoring_checkpoint(fit, "val/recall@5") is ranking
    path = rating_checkpoint_path(fit, ranking)
    lowest = min(range(len(recorded.by_epoch)), key=recorded.by_epoch.__getitem__)
    assert lowest < len(recorded.by_epoch) - 1  # the case that matters: the head overfits afterwards
    assert path == rating.best_model_path and path.endswith(f"rating-epoch{lowest:02d}.ckpt")

    reported = evaluate_rating_checkpoint(module, dm, path)
    _, fresh = tiny_setup(files, data_dir, tmp_path, trainable_layers=0)
    fresh.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    quiet = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    again = quiet.test(fresh, dm, verbose=False)[0]
    assert reported["rating_checkpoint/test/rmse"] == pytest.approx(again["test/rmse"], abs=1e-6)
    assert reported["rating_checkpoint/test/mae"] == pytest.approx(again["test/mae"], abs=1e-6)
    assert reported["rating_checkpoint/test/rmse"] != pytest.approx(last_epoch, abs=1e-4)


def test_a_checkpoint_that_repeats_another_is_dropped_and_not_tested_twice(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=0)
    best = ModelCheckpoint(dirpath=tmp_path / "a", monitor="val/rmse", mode="min")  # model.monitor=val/rmse
    rating = ModelCheckpoint(dirpath=tmp_path / "b", monitor="val/rmse", mode="min")
    ranking = ModelCheckpoint(dirpath=tmp_path / "c", monitor="val/recall@5", mode="max")
    callbacks = usable_callbacks([best, rating, ranking], loggers=[])
    assert callbacks == [best, ranking]  # Lightning refuses two checkpoints with one state key
    fit = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, callbacks=callbacks)
    fit.fit(module, dm)
    assert monitoring_checkpoint(fit, "val/rmse") is best
    assert rating_checkpoint_path(fit, best) is None
    assert rating_checkpoint_path(fit, ranking) == best.best_model_path


def test_a_file_that_is_not_a_recsys_checkpoint_says_what_it_is(tmp_path):
    from recsys.training.checkpoints import load_checkpoint_config
    from recsys.training.module import CONFIG_KEY

    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load_checkpoint_config(tmp_path / "missing.ckpt")
    text = tmp_path / "manifest.json"
    text.write_text('{"format_version": 1}')
    with pytest.raises(ValueError, match="manifest.json is not a recsys checkpoint") as not_one:
        load_checkpoint_config(text)
    assert "weights_only" not in str(not_one.value)  # torch's advice to load it unsafely is not passed on
    whole = tmp_path / "whole.ckpt"
    torch.save({CONFIG_KEY: {"seed": 3}, "state_dict": {"w": torch.ones(1000)}}, whole)
    cfg, checkpoint = load_checkpoint_config(whole)
    assert cfg.seed == 3 and checkpoint["state_dict"]["w"].sum() == 1000
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(ValueError, match="truncated.ckpt is truncated or corrupt"):
        load_checkpoint_config(truncated)
    tensor = tmp_path / "tensor.ckpt"
    torch.save(torch.zeros(3), tensor)
    listed = tmp_path / "listed.ckpt"
    torch.save({CONFIG_KEY: ["seed", 3], "state_dict": {}}, listed)  # a config that is a list, not a mapping
    for path in (tensor, listed):
        with pytest.raises(ValueError, match=f"{path.name} has no recsys config"):
            load_checkpoint_config(path)


def fake_run(folder: Path) -> Path:
    """A run directory as train.py leaves it: its checkpoints, and metrics.json naming two of them."""
    (folder / "checkpoints").mkdir(parents=True)
    for name in ("epoch03.ckpt", "last.ckpt", "rating-epoch01.ckpt"):
        (folder / "checkpoints" / name).write_bytes(b"")
    (folder / "metrics.json").write_text(json.dumps({
        "test/rmse": 0.9, "best_val/ndcg@20": 0.2, "checkpoint": "epoch03.ckpt",
        "rating_checkpoint": "rating-epoch01.ckpt"}))
    return folder


def test_a_folder_given_for_a_checkpoint_lists_the_checkpoints_in_it(tmp_path):
    from recsys.training.checkpoints import load_checkpoint_config

    run = fake_run(tmp_path / "run")
    listed = (f"{run / 'checkpoints' / 'epoch03.ckpt'} (the best by val/ndcg@20); "
              f"{run / 'checkpoints' / 'last.ckpt'} (the latest epoch); "
              f"{run / 'checkpoints' / 'rating-epoch01.ckpt'} (the lowest validation RMSE)")
    # The run directory, or its checkpoints/ folder: it used to be "No checkpoint at <folder>".
    for folder in (run, run / "checkpoints"):
        with pytest.raises(FileNotFoundError) as refused:
            load_checkpoint_config(folder)
        assert str(refused.value) == f"ckpt={folder} is a folder; give one checkpoint file in it: {listed}"
    (run / "metrics.json").unlink()  # a folder of checkpoints alone: listed without what each is but the last
    unnamed = r"epoch03.ckpt; .*last.ckpt \(the latest epoch\); .*rating-epoch01.ckpt$"
    with pytest.raises(FileNotFoundError, match=unnamed):
        load_checkpoint_config(run)
    with pytest.raises(FileNotFoundError, match=r"^ckpt=.* is a folder that holds no .ckpt file"):
        load_checkpoint_config(tmp_path)
    export = tmp_path / "export"
    export.mkdir()
    (export / "manifest.json").write_text("{}")  # made before exports recorded their source
    with pytest.raises(FileNotFoundError, match=rf"^ckpt={export} is an export, not a checkpoint \(its test metrics "
                                                r"are in its manifest.json\); give the checkpoint it was exported "
                                                r"from: a .ckpt file in its run's checkpoints/$"):
        load_checkpoint_config(export)
    source = {"checkpoint": "/runs/mi/checkpoints/epoch04.ckpt", "epoch": 4, "global_step": 325}
    (export / "manifest.json").write_text(json.dumps({"source": source}))
    with pytest.raises(FileNotFoundError, match=r"give the checkpoint it was exported from: "
                                                r"/runs/mi/checkpoints/epoch04.ckpt \(epoch 4, step 325\)$"):
        load_checkpoint_config(export)


@pytest.mark.parametrize("value", ["four", True, 6.0])
def test_evaluate_refuses_a_relevance_threshold_that_is_not_a_rating(tmp_path, value):
    from recsys.training.module import CONFIG_KEY
    from recsys.training.run import evaluate

    path = tmp_path / "epoch00.ckpt"
    torch.save({CONFIG_KEY: {"seed": 0, "data": {"relevance_min_rating": None}}, "state_dict": {}}, path)
    with pytest.raises(ValueError, match=rf"^relevance_min_rating={value!r} is not allowed: ratings are read as 1"):
        evaluate(path, "test", relevance_min_rating=value)
