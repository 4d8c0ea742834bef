"""A resumed run (``ckpt_path=...``) is checked against its checkpoint before the data is read: another
dataset, split or network, a file that is no checkpoint, or fewer epochs than it has run are refused
with the settings to give (they failed inside Lightning: a size mismatch, a zip error, a
MisconfigurationException naming ``Trainer(max_epochs=...)``)."""

from pathlib import Path

import pytest
import torch

from recsys.training.resume import started_with
from tests.training.test_learning_curves import train_tiny


@pytest.fixture
def earlier_run(tmp_path: Path, monkeypatch) -> Path:
    """The last.ckpt of a finished tiny run of 3 epochs."""
    checkpoint = train_tiny(tmp_path / "earlier", monkeypatch, "logger=none", "trainer.max_epochs=3") / "checkpoints" \
        / "last.ckpt"
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"] == 2
    return checkpoint


def resume(tmp_path: Path, monkeypatch, checkpoint: Path, *overrides: str) -> Path:
    return train_tiny(tmp_path / "resumed", monkeypatch, "logger=none", "trainer.max_epochs=3",
                      f"ckpt_path={checkpoint}", *overrides)


def test_a_resume_with_another_split_or_network_names_each_setting(tmp_path, monkeypatch, earlier_run):
    with pytest.raises(ValueError) as refused:
        resume(tmp_path, monkeypatch, earlier_run, "data.split.seed=3", "model.net.dim=32")
    assert str(refused.value) == (
        f"ckpt_path={earlier_run} was trained with other settings than this run's (data.split.seed: 0 there, 3 "
        "here; model.net.dim: 128 there, 32 here): give the same data, split and model settings as the run it "
        "comes from")
    assert not (tmp_path / "resumed" / "run" / "checkpoints").exists()  # refused before training
    # The encoder's settings are named once (model.net.text holds model.text).
    with pytest.raises(ValueError, match=r"\(model\.net\.text\.trainable_layers: 0 there, 1 here\)"):
        resume(tmp_path / "again", monkeypatch, earlier_run, "model.text.trainable_layers=1")


def test_a_resume_shorter_than_its_checkpoint_says_how_long_to_make_it(tmp_path, monkeypatch, earlier_run):
    with pytest.raises(ValueError) as refused:
        resume(tmp_path, monkeypatch, earlier_run, "trainer.max_epochs=1")
    assert str(refused.value) == (
        f"ckpt_path={earlier_run} was saved in epoch 2 (numbered from 0) of a run of trainer.max_epochs=3, past "
        f"trainer.max_epochs=1: give trainer.max_epochs above 3 to train it further, or test it with python "
        f"scripts/evaluate.py ckpt={earlier_run}")


def test_a_resume_with_the_same_settings_and_folders_elsewhere_goes_on(tmp_path, monkeypatch, earlier_run):
    import json

    # Another cache folder (as on another machine) is no difference of the run; more epochs go on.
    out = resume(tmp_path, monkeypatch, earlier_run, "trainer.max_epochs=4",
                 f"model.net.embedding_cache_dir={tmp_path / 'elsewhere'}")
    assert torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 3
    assert json.loads((out / "metrics.json").read_text())["test/rmse"] > 0


def test_a_file_that_is_no_checkpoint_is_refused_before_the_data(tmp_path, monkeypatch):
    not_a_checkpoint = tmp_path / "metrics.json"
    not_a_checkpoint.write_text("{}")
    with pytest.raises(ValueError, match=r"metrics.json is not a recsys checkpoint"):
        resume(tmp_path, monkeypatch, not_a_checkpoint)


def test_a_run_directory_given_to_resume_names_its_last_checkpoint(tmp_path, monkeypatch):
    from tests.training.test_checkpoints import fake_run

    run = fake_run(tmp_path / "run")
    with pytest.raises(FileNotFoundError) as refused:
        resume(tmp_path, monkeypatch, run)
    message = str(refused.value)
    assert message.startswith(f"ckpt_path={run} is a folder; give one checkpoint file in it: ")
    assert message.endswith(f"{run / 'checkpoints' / 'rating-epoch01.ckpt'} (the lowest validation RMSE). "
                            "A run resumes from its last.ckpt (ckpt_path=last: the newest run's)")


def test_the_overrides_of_the_run_that_wrote_a_checkpoint_are_read_from_its_folder(tmp_path):
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert started_with(checkpoint) is None  # no .hydra folder: no hint
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text("- data=magazine\n- ckpt_path=/x/last.ckpt\n- seed=2\n")
    assert started_with(checkpoint) == ["data=magazine", "seed=2"]
