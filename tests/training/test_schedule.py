"""The epoch count of a run: the model's, raised to reach model.min_steps on small datasets."""

from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir

from recsys.training.run import train
from recsys.training.trainer_settings import training_epochs
from tests.conftest import REPO_ROOT


def config(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def data(train_pairs: int, batch_size: int = 128) -> SimpleNamespace:
    return SimpleNamespace(prepared=SimpleNamespace(pairs={"train": range(train_pairs)}), batch_size=batch_size)


@pytest.mark.parametrize(("pairs", "epochs"), [
    (8208, 6),   # Musical Instruments, random split: 65 batches an epoch, 390 steps in 6 epochs
    (1611, 20),  # a Magazine CV fold: 13 batches an epoch, 260 steps in 20
    (1841, 18),  # Magazine, random split: 15 batches an epoch
    (100, 260),  # one batch an epoch
])
def test_the_model_epochs_are_raised_to_reach_min_steps(pairs, epochs):
    cfg = config()
    assert (cfg.model.max_epochs, cfg.model.min_steps) == (6, 260)
    assert training_epochs(cfg, data(pairs)) == epochs


def test_an_explicit_epoch_count_or_min_steps_0_is_kept():
    assert training_epochs(config("trainer.max_epochs=3"), data(1611)) == 3
    assert training_epochs(config("model.min_steps=0"), data(1611)) == 6
    assert training_epochs(config("model.max_epochs=30"), data(1611)) == 30  # the model's own count, if larger
    # No count at all (Lightning's own default) is kept, whether given to the trainer or to the model.
    assert training_epochs(config("trainer.max_epochs=null"), data(1611)) is None
    assert training_epochs(config("model.max_epochs=null"), data(1611)) is None


def test_steps_count_batches_of_the_configured_size_and_accumulation():
    assert training_epochs(config(), data(1611, batch_size=32)) == 6  # 51 batches an epoch: 306 steps
    assert training_epochs(config("+trainer.accumulate_grad_batches=2"), data(8208)) == 8  # 33 steps an epoch


def test_models_without_a_floor_keep_their_epochs():
    assert training_epochs(config("model=mf"), data(100)) == 8


@pytest.mark.parametrize("override", ["trainer.max_epochs=abc", "model.min_steps=1.5"])
def test_an_epoch_or_step_count_that_is_not_a_whole_number_is_named(override, tmp_path):
    key = override.partition("=")[0]
    with pytest.raises(ValueError, match=rf"^{key}=.* is not allowed: give a whole number, e.g. {key}=6$"):
        training_epochs(config(override), data(100))
    # train() refuses it before it reads any data (none exists here).
    with pytest.raises(ValueError, match=rf"^{key}="):
        train(config(override, f"paths.data_dir={tmp_path}", f"paths.output_dir={tmp_path}"))


def test_a_run_of_steps_without_an_epoch_limit_stops_at_max_steps(tmp_path, monkeypatch):
    import torch

    from tests.training.test_learning_curves import train_tiny

    out = train_tiny(tmp_path, monkeypatch, "logger=none", "trainer.max_epochs=-1", "trainer.max_steps=7")
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 7
    # The schedule is laid out over those 7 steps: warmup, then decay to (near) zero at the last.
    scheduler = last["lr_schedulers"][0]
    assert scheduler["last_epoch"] == 7 and scheduler["_last_lr"][0] < 0.2 * max(scheduler["base_lrs"])


def test_last_ckpt_is_the_latest_epoch_when_the_best_is_an_earlier_one(tmp_path, monkeypatch):
    import torch

    from tests.training.test_learning_curves import train_tiny

    # On the tiny data validation recall@10 is 1.0 from the first epoch: epoch 0 stays the best.
    out = train_tiny(tmp_path, monkeypatch, "logger=none", "trainer.max_epochs=3")
    checkpoints = out / "checkpoints"
    epochs = {path.name: torch.load(path, map_location="cpu", weights_only=True)["epoch"]
              for path in checkpoints.glob("*.ckpt")}
    assert epochs["epoch00.ckpt"] == 0
    assert epochs["last.ckpt"] == 2  # Lightning's save_last kept epoch 0's here: resuming re-ran two epochs
    assert sorted(epochs) == ["epoch00.ckpt", "last.ckpt", *[n for n in epochs if n.startswith("rating-")]]


def test_a_run_that_ends_before_any_validation_says_what_it_tested(tmp_path, monkeypatch, caplog):
    import json
    import logging

    from tests.training.test_learning_curves import train_tiny

    # 3 batches an epoch: 2 steps end training inside the first, before its validation.
    with caplog.at_level(logging.INFO, logger="recsys.training.run"):
        out = train_tiny(tmp_path, monkeypatch, "logger=none", "trainer.max_epochs=-1", "trainer.max_steps=2")
    last = out / "checkpoints" / "last.ckpt"
    assert ("No best checkpoint by val/recall@10: training ended (step 2) before any validation; testing the "
            f"weights it ended with ({last})") in caplog.text
    metrics = json.loads((out / "metrics.json").read_text())
    assert not any(key.startswith("val/") for key in metrics)
    assert metrics["checkpoint"] == "last.ckpt" and 0 < metrics["test/rmse"] < 4  # what export.py reads
    # The run named no checkpoint to take further; the last one holds the weights it tested.
    assert (f"No validation ran, so no checkpoint is the best by val/recall@10; the last one: {last}\n"
            f"Evaluate it: python scripts/evaluate.py ckpt={last} split=test\n"
            f"Export it for serving: python scripts/export.py ckpt={last} out=exports/run") in caplog.text
    from recsys.training.run import evaluate
    assert evaluate(last, "test", tmp_path / "evaluated")["test/rmse"] == pytest.approx(metrics["test/rmse"], abs=1e-5)


def test_a_resumed_run_keeps_the_earlier_best_epoch_and_brings_its_checkpoint(tmp_path, monkeypatch):
    import json

    import pandas as pd

    from tests.training.test_learning_curves import train_tiny

    earlier = train_tiny(tmp_path / "a", monkeypatch, "logger=none", "trainer.max_epochs=1")
    resumed = train_tiny(tmp_path / "b", monkeypatch, "logger=none", "trainer.max_epochs=3",
                         f"ckpt_path={earlier / 'checkpoints' / 'last.ckpt'}")
    curves = pd.read_csv(resumed / "learning_curves.csv").dropna(subset=["val/recall@10"])
    assert curves["epoch"].tolist() == [0, 1, 2]  # epoch 0 from the earlier run
    recall = curves["val/recall@10"].tolist()
    best = recall.index(max(recall))  # the first epoch of the highest: later ties do not replace it
    assert best == 0  # what this test is about: the best epoch is the earlier run's
    metrics = json.loads((resumed / "metrics.json").read_text())
    # Lightning's own callback forgot the earlier score: the first resumed epoch became the best.
    assert metrics["checkpoint"] == "epoch00.ckpt" and metrics["best_val/recall@10"] == recall[0]
    assert (resumed / "checkpoints" / "epoch00.ckpt").is_file()  # in the resumed run's folder
    assert (earlier / "checkpoints" / "epoch00.ckpt").is_file()  # and still in the earlier one's
    assert not (resumed / "checkpoints" / "epoch01.ckpt").exists()


def test_a_resumed_run_whose_earlier_best_checkpoint_is_gone_says_so(tmp_path, monkeypatch, caplog):
    import json
    import logging

    from tests.training.test_learning_curves import train_tiny

    earlier = train_tiny(tmp_path / "a", monkeypatch, "logger=none", "trainer.max_epochs=1")
    (earlier / "checkpoints" / "epoch00.ckpt").unlink()
    with caplog.at_level(logging.WARNING, logger="recsys.training.callbacks"):
        resumed = train_tiny(tmp_path / "b", monkeypatch, "logger=none", "trainer.max_epochs=2",
                             f"ckpt_path={earlier / 'checkpoints' / 'last.ckpt'}")
    assert (f"The earlier run's checkpoint {earlier.resolve() / 'checkpoints' / 'epoch00.ckpt'} is gone: the best "
            "epoch by val/recall@10 is chosen among the resumed run's epochs only") in caplog.text
    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["checkpoint"] == "epoch01.ckpt" and (resumed / "checkpoints" / "epoch01.ckpt").is_file()


def test_a_run_resumed_with_more_epochs_takes_the_longer_schedule_from_its_first_step(tmp_path, monkeypatch):
    import pandas as pd

    from tests.training.test_learning_curves import train_tiny

    def rates(name: str, *overrides: str) -> pd.Series:
        out = train_tiny(tmp_path / name, monkeypatch, "logger=csv", f"logger.csv.save_dir={tmp_path / name}",
                         "trainer.log_every_n_steps=1", *overrides)
        logged = pd.read_csv(next((tmp_path / name).rglob("metrics.csv"))).dropna(subset=["lr-AdamW/rest"])
        assert (out / "checkpoints" / "last.ckpt").is_file()
        return logged.set_index("step")["lr-AdamW/rest"]

    finished = rates("a", "trainer.max_epochs=1")  # 3 steps, its schedule decayed to 0 at the end
    extended = rates("b", "trainer.max_epochs=3", f"ckpt_path={tmp_path / 'a' / 'run' / 'checkpoints' / 'last.ckpt'}")
    whole = rates("c", "trainer.max_epochs=3")  # 9 steps
    assert finished.index.tolist() == [0, 1, 2] and extended.index.tolist() == [3, 4, 5, 6, 7, 8]
    # The resumed steps follow the 9-step schedule, the first included (it took the old schedule's 0).
    assert extended.tolist() == pytest.approx(whole.loc[3:].tolist(), rel=1e-6)
    assert extended.loc[3] > 0.5 * whole.max()
