"""Run settings that cannot work are refused before training, naming what is allowed."""

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from recsys.training.run import train
from tests.conftest import config_settings, tiny_reviews, write_lines, wrong_kind_refusals
from tests.test_configs import compose_run
from tests.training.test_schedule import config


@pytest.mark.parametrize(("override", "message"), [
    ("model.monitor=val/recal@10", r"^model.monitor=val/recal@10 is not a validation metric of this model; "
                                   r"choose one of val/loss, .*val/recall@10, .*val/ranked_users$"),
    ("model.monitor=val/ndcg@50", "val/ndcg@5, .*val/ndcg@20"),  # the cut-offs are model.module.ks
    ("model.monitor=test/recall@10", "is not a validation metric"),
    ("model.monitor_mode=maximum", r"^model.monitor_mode=maximum is not allowed; use min or max$"),
    # A callback's own monitor: Lightning failed at the end of the first epoch.
    ("callbacks.checkpoint.monitor=val/recall@15",
     r"^callbacks.checkpoint.monitor=val/recall@15 is not a validation metric of this model; choose one of val/loss"),
    ("callbacks.rating_checkpoint.mode=lowest",
     r"^callbacks.rating_checkpoint.mode=lowest is not allowed; use min or max$"),
    ("+callbacks.stop._target_=pytorch_lightning.callbacks.EarlyStopping +callbacks.stop.monitor=val/rsme",
     r"^callbacks.stop.monitor=val/rsme is not a validation metric"),
    # Not "monitor not logged":
    ("model.module.ks=[]", r"^model.module.ks=\[\] is not allowed: give a list of cut-offs >= 1"),
    ("seed=abc", r"^seed='abc' is not allowed: give a whole number"),
    ("test=maybe", r"^test='maybe' is not allowed: give true or false$"),  # was taken as true
    # Lightning took it, to fail at the first logging step:
    ("trainer.log_every_n_steps=abc", r"^trainer.log_every_n_steps='abc' is not allowed: give a whole number >= 1$"),
    ("ckpt_path=/nowhere/last.ckpt", r"^ckpt_path=/nowhere/last.ckpt: no checkpoint there"),  # was after the data
    # Lightning's endless run failed at its start ("cannot convert float infinity to integer"); 0 trained nothing.
    ("trainer.max_epochs=-1", r"^trainer.max_epochs=-1 \(no epoch limit\) needs trainer.max_steps=N: the learning"),
    ("trainer.max_epochs=0", r"^trainer.max_epochs=0 is not allowed: give a number of epochs >= 1 \(0 trains nothing"),
    ("trainer.max_epochs=-2", r"^trainer.max_epochs=-2 is not allowed: give a number of epochs >= 1"),
    ("trainer.max_steps=0", r"^trainer.max_steps=0 is not allowed: it trains nothing"),
    ("trainer.max_steps=-5", r"^trainer.max_steps=-5 is not allowed: give a whole number >= -1 \(-1: no step limit"),
    pytest.param("trainer=gpu", r"^trainer.accelerator=gpu needs a CUDA GPU, and torch sees none .*; use trainer=cpu$",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
])
def test_a_setting_that_cannot_work_is_refused_before_the_data(override, message, tmp_path):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        train(config(*override.split(), f"paths.data_dir={tmp_path}", f"paths.output_dir={tmp_path}"))


@pytest.mark.parametrize("model", ["two_tower", "mf"])
def test_the_default_monitors_are_allowed_and_ks_set_the_cut_offs(model):
    from recsys.training.trainer_settings import check_monitor

    check_monitor(config(f"model={model}"))  # raises if the model's own default monitor were refused
    check_monitor(config(f"model={model}", "model.monitor=val/mrr@3", "model.module.ks=[3]"))
    # With ks=[3] validation logs no @10 metric: the default monitor is refused, naming the @3 ones.
    with pytest.raises(ValueError, match=r"^model.monitor=val/recall@10 is not .*val/recall@3, .*val/mrr@3"):
        check_monitor(config(f"model={model}", "model.monitor=val/recall@10", "model.module.ks=[3]"))


def test_a_callback_may_monitor_a_training_metric_or_any_validation_one():
    from recsys.training.trainer_settings import check_monitor

    stop = ["+callbacks.stop._target_=pytorch_lightning.callbacks.EarlyStopping", "+callbacks.stop.mode=min"]
    check_monitor(config(*stop, "+callbacks.stop.monitor=train/loss"))  # what training logs is its own
    check_monitor(config(*stop, "+callbacks.stop.monitor=val/mae", "callbacks.rating_checkpoint.monitor=val/loss"))
    check_monitor(config("callbacks=none"))


@pytest.mark.parametrize(("fractions", "test", "message"), [
    ("[0.9,0.1,0.0]", True, r"^the test split holds no interactions \(data.split.fractions=\[0.9, 0.1, 0.0\]\): "
                            r"give it a share or run with test=false$"),
    ("[0.9,0.0,0.1]", False, r"^the val split holds no interactions .*: give it a share$"),
])
def test_an_empty_validation_or_test_split_is_refused_before_training(fractions, test, message, tmp_path):
    write_lines(tmp_path / "data" / "tiny" / "reviews.json.gz", tiny_reviews())
    overrides = ["data.dataset.name=tiny", "data.dataset.subdir=tiny", "data.dataset.reviews=reviews.json.gz",
                 f"paths.data_dir={tmp_path / 'data'}", f"paths.output_dir={tmp_path}",
                 f"paths.cache_dir={tmp_path / 'cache'}", f"data.split.fractions={fractions}", f"test={test}",
                 "logger=none"]
    for model in ("two_tower", "ease"):
        with pytest.raises(ValueError, match=message):
            train(config(*overrides, f"model={model}"))


def test_an_optimizer_setting_torch_refuses_names_the_config_key(tiny_dataset, tmp_path):
    from functools import partial

    import pytorch_lightning as pl

    from recsys.training.module import TwoTowerModule
    from tests.training.test_module import tiny_setup

    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=0)
    # The learning rate and weight decay are checked when the module is built ...
    with pytest.raises(ValueError, match=r"^model.module.optimizer.lr=-1.0 is not allowed: give a number > 0$"):
        TwoTowerModule(module.net, optimizer=partial(torch.optim.AdamW, lr=-1.0))
    # ... the optimizer's other settings by torch, at the start of fitting.
    module = TwoTowerModule(module.net, optimizer=partial(torch.optim.AdamW, lr=1e-3, eps=-1.0))
    fit = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match=r"^model.module.optimizer: Invalid epsilon value: -1"):
        fit.fit(module, dm)


def test_every_trainer_setting_refuses_a_value_of_the_wrong_kind(tmp_path):
    from recsys.settings import whole_number_setting
    from recsys.training.trainer_settings import built_trainer, check_trainer_settings

    def check(overrides: list[str]) -> None:
        cfg = config(*overrides)
        whole_number_setting(cfg, "trainer.max_epochs")
        check_trainer_settings(cfg)

    for trainer in ("cpu", "gpu", "ddp"):
        defaults = OmegaConf.to_container(config(f"trainer={trainer}").trainer)
        # The accelerator's name is Lightning's to check (below), the run folder anything.
        settings = config_settings(defaults, "trainer", frozenset({"accelerator", "strategy", "precision",
                                                                    "default_root_dir"}))
        assert {"trainer.log_every_n_steps", "trainer.deterministic", "trainer.devices"} <= {k for k, _ in settings}
        check([f"trainer={trainer}"])  # the defaults themselves pass
        wrong = wrong_kind_refusals(check, settings, [f"trainer={trainer}"])
        assert not wrong, "\n".join(wrong)
    check(["trainer.gradient_clip_val=null", "trainer.devices=auto", "trainer.deterministic=warn"])
    for devices in ("-1", "[0,1]", "'0,1'", "2"):  # Lightning's other forms pass too
        check(["trainer=ddp", f"trainer.devices={devices}"])
    with pytest.raises(ValueError, match=r"^trainer.devices='0,x' is not allowed: give a whole number >= 1 \(or -1"):
        check(["trainer.devices='0,x'"])
    # What Lightning refuses when it builds the trainer is named as a trainer setting.
    with pytest.raises(ValueError, match=r"^a trainer setting is not allowed: Precision 'bf17' is invalid"):
        built_trainer(compose_run(tmp_path, ["trainer.precision=bf17"]), logger=False)


def test_a_baseline_without_a_test_split_runs_with_test_false(tmp_path):
    import json

    write_lines(tmp_path / "data" / "tiny" / "reviews.json.gz", tiny_reviews())
    out = tmp_path / "run"
    out.mkdir()
    # As a Hydra app composes it (the run folder is out), not relying on an earlier test's Hydra state.
    cfg = compose_run(out, [
        "data.dataset.name=tiny", "data.dataset.subdir=tiny", "data.dataset.reviews=reviews.json.gz",
        f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}",
        "data.split.fractions=[0.9,0.1,0.0]", "test=false", "logger=none", "model=ease",
    ])
    with open_dict(cfg):
        del cfg["hydra"]  # a Hydra app's config holds no hydra section
    train(cfg)
    metrics = json.loads((out / "metrics.json").read_text())
    assert "val/recall@10" in metrics and not any(k.startswith("test/") for k in metrics)
