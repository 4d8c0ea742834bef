"""Where runs stand in the dashboards: W&B names, groups and tags, one W&B run per training run
(a Hydra multirun's jobs included), and baselines logged beside trained models."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from recsys.training.loggers import (
    closing_loggers,
    dashboard_identity,
    instantiate_loggers,
    log_final_metrics,
    set_dashboard_group,
    swept_settings,
)
from tests.conftest import REPO_ROOT, script_env, tiny_reviews, write_lines
from tests.test_configs import compose_run
from tests.wandb_records import offline_run


def test_a_run_is_named_by_its_folder_and_tagged_with_its_data_model_and_split(tmp_path):
    outputs = tmp_path / "outputs"
    cfg = compose_run(tmp_path, ["experiment=mi_full", f"paths.output_dir={outputs}"])
    identity = dashboard_identity(cfg, outputs / "mi_full" / "2026-12-05_15-16-04")
    assert identity == {"name": "mi_full/2026-12-05_15-16-04",
                        "tags": ["musical_instruments", "TwoTowerModel", "random split"]}  # no group: one run
    # A folder outside paths.output_dir (hydra.run.dir=...) is named under the task.
    assert dashboard_identity(cfg, tmp_path / "elsewhere" / "try3")["name"] == "mi_full/try3"
    baseline = compose_run(tmp_path, ["model=ease", "data=magazine", "data.split.strategy=temporal"])
    assert dashboard_identity(baseline, tmp_path)["tags"] == ["magazine", "EASE", "temporal split"]


def test_the_identity_fills_only_what_the_wandb_config_leaves_unset(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    identity = {"name": "train/run1", "group": "sweep", "tags": ["tiny", "EASE", "random split"]}
    (wandb,) = [lg for lg in instantiate_loggers(compose_run(tmp_path, ["logger=wandb"]).logger, identity)
                if isinstance(lg, WandbLogger)]
    assert wandb._wandb_init["name"] == "train/run1"
    assert (wandb._wandb_init["group"], wandb._wandb_init["tags"]) == ("sweep", ["tiny", "EASE", "random split"])
    cfg = compose_run(tmp_path, ["logger=wandb", "logger.wandb.name=mine", "logger.wandb.tags=[a]"])
    (wandb,) = [lg for lg in instantiate_loggers(cfg.logger, identity) if isinstance(lg, WandbLogger)]
    assert (wandb._wandb_init["name"], wandb._wandb_init["tags"]) == ("mine", ["a"])
    assert wandb._wandb_init["group"] == "sweep"


@pytest.mark.parametrize(("mode", "offline"), [("offline", True), ("dryrun", True), ("disabled", False)])
def test_wandb_mode_is_read_as_wandb_reads_it(mode, offline, tmp_path, monkeypatch):
    # Lightning's offline WandbLogger sets WANDB_MODE=dryrun: the next job of a multirun read
    # that as "online" and said so (wandb itself stayed offline).
    monkeypatch.setenv("WANDB_MODE", mode)
    (wandb,) = [lg for lg in instantiate_loggers(compose_run(tmp_path, ["logger=wandb"]).logger)
                if isinstance(lg, WandbLogger)]
    assert wandb._offline is offline
    if mode == "disabled":
        import os

        assert os.environ["WANDB_MODE"] == "disabled"  # the user's choice is left alone


def test_drivers_group_their_runs_unless_the_config_names_a_group(tmp_path):
    cfg = compose_run(tmp_path, ["logger=wandb"])
    with open_dict(cfg):
        set_dashboard_group(cfg, "cross_validate/cv_mi")
    assert cfg.logger.wandb.group == "cross_validate/cv_mi" and "group" not in cfg.logger.csv
    named = compose_run(tmp_path, ["logger=wandb", "logger.wandb.group=mine"])
    with open_dict(named):
        set_dashboard_group(named, "cross_validate/cv_mi")
    assert named.logger.wandb.group == "mine"


def test_a_failed_run_ends_its_wandb_run_as_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = WandbLogger(project="recsys", save_dir=str(tmp_path), offline=True, name="failing")
    with pytest.raises(RuntimeError, match="out of memory"), closing_loggers([logger]):
        logger.log_metrics({"train/loss": 1.5}, step=0)
        raise RuntimeError("out of memory")
    run = offline_run(next((tmp_path / "wandb").glob("offline-run-*")))
    assert (run.name, run.exit_code, run.summary["train/loss"]) == ("failing", 1, 1.5)


def test_final_metrics_of_a_run_without_a_trainer_reach_every_logger(tmp_path):
    csv = CSVLogger(save_dir=str(tmp_path), name="csv")
    log_final_metrics([csv], {"model": {"l2": 200.0}}, {"test/recall@10": 0.25, "test/rmse": 0.9})
    logged = (Path(csv.log_dir) / "metrics.csv").read_text().splitlines()
    assert logged[0].split(",") == ["step", "test/recall@10", "test/rmse"] and logged[1] == "0,0.25,0.9"
    assert "l2: 200.0" in (Path(csv.log_dir) / "hparams.yaml").read_text()


def test_a_multirun_job_is_named_by_its_values_of_the_swept_settings(tmp_path):
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task: ['data=magazine', 'model.net.dim=64,128', 'seed=range(0,3)', '+x=1']\n")
    job = ["data=magazine", "model.net.dim=128", "seed=2", "+x=1"]
    assert swept_settings(tmp_path, job) == ["model.net.dim=128", "seed=2"]
    assert swept_settings(tmp_path / "another_sweeper", job) == []  # no multirun.yaml: nothing to tell


def test_each_job_of_a_multirun_is_its_own_wandb_run_in_the_sweeps_group(tmp_path):
    # Lightning leaves a W&B run open: the second job's WandbLogger logged into the first job's
    # run. Baselines (here most-popular) log to the dashboards as trained models do.
    write_lines(tmp_path / "data" / "tiny" / "reviews.json.gz", tiny_reviews(num_users=30, num_items=12))
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "-m", "model=popularity", "seed=0,1",
         "logger=wandb", "data.dataset.name=tiny", "data.dataset.subdir=tiny", "data.dataset.reviews=reviews.json.gz",
         f"paths.data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep}"],
        cwd=REPO_ROOT, env=script_env(tmp_path / "cache"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "already in progress" not in result.stderr
    for job in (0, 1):
        (folder,) = (sweep / str(job) / "wandb").glob("offline-run-*")
        run = offline_run(folder)
        # Named by the job's value of the swept setting: the other overrides are every job's.
        assert (run.name, run.group, run.tags) == (f"train/sweep/{job} seed={job}", "train/sweep",
                                                   ["tiny", "Popularity", "random split"])
        assert run.config["seed"] == job and run.exit_code == 0
        metrics = json.loads((sweep / str(job) / "metrics.json").read_text())
        for key in ("test/recall@10", "test/ndcg@10", "val/recall@10", "val/mrr@10"):
            assert run.summary[key] == pytest.approx(metrics[key]), key


def tensorboard_records(log_dir: Path) -> dict:
    """What TensorBoard shows of a run: the last value of each scalar, image and text tags, the
    HParams tab's metrics and hyperparameters."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    runs = EventMultiplexer({"run": str(log_dir)})
    runs.Reload()
    run = runs.GetAccumulator("run")
    tags = run.Tags()
    records = {"scalars": {t: run.Scalars(t)[-1].value for t in tags["scalars"]}, "images": tags["images"],
               "texts": {t: b"".join(run.Tensors(t)[-1].tensor_proto.string_val).decode()
                         for t in tags["tensors"] if t.endswith("text_summary")}}
    for content in run.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("experiment"):
            records["hparam_metrics"] = [info.name.tag for info in data.experiment.metric_infos]
        if data.HasField("session_start_info"):
            hparams = data.session_start_info.hparams.items()
            records["hparams"] = {k: v.string_value or v.number_value for k, v in hparams}
    return records


def test_tensorboard_compares_runs_by_their_results_and_shows_their_reports(tmp_path, monkeypatch):
    from tests.training.test_learning_curves import train_tiny

    out = train_tiny(tmp_path, monkeypatch, "logger=tensorboard", f"logger.tensorboard.save_dir={tmp_path / 'tb'}",
                     "trainer.log_every_n_steps=1", "seed=3")
    metrics = json.loads((out / "metrics.json").read_text())
    (log_dir,) = (tmp_path / "tb" / "tensorboard").iterdir()
    records = tensorboard_records(log_dir)
    assert "hp_metric" not in records["scalars"]  # Lightning's placeholder -1
    # The HParams tab: the test figures, the rating checkpoint's and the best validation figure.
    assert {"test/recall@10", "test/rmse", "rating_checkpoint/test/rmse", "best_val/recall@10",
            "train_minutes"} <= set(records["hparam_metrics"])
    assert not [tag for tag in records["hparam_metrics"] if tag.startswith("val/")]
    for tag in ("test/recall@10", "test/rmse", "rating_checkpoint/test/rmse", "best_val/recall@10"):
        assert records["scalars"][tag] == pytest.approx(metrics[tag], abs=1e-6), tag
    assert records["hparams"]["seed"] == 3 and records["hparams"]["data/dataset/name"] == "tiny"
    assert records["images"] == ["learning_curves"]
    (recommendations,) = records["texts"].values()
    assert recommendations == (out / "recommendations.md").read_text()


def test_a_baseline_reaches_tensorboards_hparams_tab(tmp_path, monkeypatch, caplog):
    import logging

    write_lines(tmp_path / "data" / "tiny" / "reviews.json.gz", tiny_reviews())
    monkeypatch.setattr("recsys.training.run.run_dir", lambda cfg: tmp_path / "run")
    from recsys.training.run import train
    from tests.training.test_schedule import config

    with caplog.at_level(logging.INFO, logger="recsys.training.run"):
        train(config("data.dataset.name=tiny", "data.dataset.subdir=tiny", "data.dataset.reviews=reviews.json.gz",
                     f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}", "model=ease",
                     "logger=tensorboard", f"logger.tensorboard.save_dir={tmp_path / 'tb'}",
                     f"trainer.default_root_dir={tmp_path}", "callbacks=none"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    (log_dir,) = (tmp_path / "tb" / "tensorboard").iterdir()
    (summary,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Wrote ")]
    assert summary.endswith(f"\n\nTensorBoard: tensorboard --logdir {log_dir}")
    records = tensorboard_records(log_dir)
    assert "test/recall@10" in records["hparam_metrics"]
    assert records["scalars"]["test/recall@10"] == pytest.approx(metrics["test/recall@10"], abs=1e-6)
    # The recall curve (K = 1..50) stays in metrics.json for the benchmark's plots; the dashboard
    # gets the configured K (5, 10, 20), as for a trained model.
    assert {f"test/recall@{k}" for k in range(1, 51)} <= set(metrics)
    ranked = {key for key in records["hparam_metrics"] if key.startswith("test/recall@")}
    assert ranked == {"test/recall@5", "test/recall@10", "test/recall@20"}
    assert {"test/coverage@10", "test/popularity@10"} <= set(records["hparam_metrics"])


def test_a_run_ends_by_saying_where_each_dashboard_keeps_it(tmp_path, monkeypatch, caplog):
    import logging

    from tests.training.test_learning_curves import train_tiny

    # An offline W&B run was silent about where it was and how to upload it.
    monkeypatch.setenv("WANDB_MODE", "offline")
    with caplog.at_level(logging.INFO, logger="recsys.training.run"):
        train_tiny(tmp_path, monkeypatch, "logger=wandb", f"logger.wandb.save_dir={tmp_path / 'dash'}",
                   f"logger.csv.save_dir={tmp_path / 'dash'}", "trainer.max_epochs=1")
    (wandb_run,) = (tmp_path / "dash" / "wandb").glob("offline-run-*")
    (csv_file,) = (tmp_path / "dash").rglob("metrics.csv")
    (summary,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Run directory: ")]
    assert summary.endswith(f"CSV log: {csv_file}\nW&B run (offline), to upload it: wandb sync {wandb_run}")
    assert offline_run(wandb_run).exit_code == 0 and "test/rmse" in csv_file.read_text()
