"""The ``train.py`` and ``evaluate.py`` entries."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger

from recsys.benchmarking.error_breakdown import model_error_breakdown, write_breakdown
from recsys.data.datamodule import ReviewDataModule, check_relevance_min_rating
from recsys.export.format import exportable_net
from recsys.run_folder import folder_message, run_name
from recsys.settings import checked_flag, flag_setting, plain_config, whole_number_setting
from recsys.training.callbacks import LearningCurves, RandomStateCheckpoint, run_progress_bar
from recsys.training.checkpoints import checkpoint_datamodule, load_checkpoint_config
from recsys.training.interruption import (
    explained_interruption,
    interruption_message,
    testing_interruption_message,
)
from recsys.training.loggers import (
    closing_loggers,
    dashboard_identity,
    dashboard_lines,
    instantiate_callbacks,
    instantiate_loggers,
    log_final_metrics,
    log_run_reports,
    usable_callbacks,
)
from recsys.training.metrics_keys import CHECKPOINT_KEY, RATING_CHECKPOINT_KEY, shown_at
from recsys.training.module import TwoTowerModule
from recsys.training.report import (
    example_recommendations,
    metrics_table,
    plot_learning_curves,
    write_metrics,
    write_recommendations,
)
from recsys.training.resume import check_resumable, check_resumed_length
from recsys.training.summary import ComponentSummary
from recsys.training.trainer_settings import (
    built_trainer,
    check_accelerator,
    check_monitor,
    check_trainer_settings,
    share_cpu_threads,
    training_epochs,
)

log = logging.getLogger(__name__)
# What callbacks.rating_checkpoint monitors: rating error, whose best epoch is often earlier than ranking's.
RATING_MONITOR = "val/rmse"


def run_dir(cfg: DictConfig) -> Path:
    """The Hydra run directory, or ``paths.output_dir`` outside a Hydra app."""
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.output_dir)


def build_module(cfg: DictConfig, datamodule: ReviewDataModule) -> TwoTowerModule:
    """The LightningModule of ``cfg.model`` sized for ``datamodule``'s catalog."""
    sizes = {"num_items": datamodule.num_items}
    if "num_users" in cfg.model.net.keys():  # noqa: SIM118 (OmegaConf: "in" skips missing ??? values)
        sizes["num_users"] = datamodule.num_users
    net = hydra.utils.instantiate(cfg.model.net, **sizes)
    module = hydra.utils.instantiate(cfg.model.module, net=net)
    module.run_config = OmegaConf.to_yaml(cfg, resolve=True)
    return module


def _resolve_checkpoint(ckpt_path: str | None, cfg: DictConfig) -> str | None:
    if ckpt_path != "last":
        return ckpt_path
    candidates = sorted(Path(cfg.paths.output_dir, cfg.task_name).glob("*/checkpoints/last.ckpt"))
    if not candidates:
        raise FileNotFoundError(f"ckpt_path=last: no last.ckpt under {Path(cfg.paths.output_dir, cfg.task_name)}")
    return str(max(candidates, key=lambda p: p.stat().st_mtime))


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float | torch.Tensor)}


def require_held_out(datamodule: ReviewDataModule, splits: list[str]) -> None:
    """Refuse a run whose validation (what picks the checkpoints) or test split holds no
    interactions, before training rather than at its end."""
    for split in splits:
        if len(datamodule.prepared.pairs[split]) == 0:
            remedy = " or run with test=false" if split == "test" else ""
            raise ValueError(f"the {split} split holds no interactions (data.split.fractions="
                             f"{list(datamodule.split.fractions)}): give it a share{remedy}")


def monitoring_checkpoint(trainer: pl.Trainer, monitor: str) -> ModelCheckpoint | None:
    """The run's checkpoint callback that keeps the best ``monitor`` epoch (the first one if none does)."""
    checkpoints = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
    return next((c for c in checkpoints if c.monitor == monitor), checkpoints[0] if checkpoints else None)


def last_checkpoint_path(trainer: pl.Trainer) -> str | None:
    """The checkpoint of the latest epoch (``callbacks.last_checkpoint``: no monitor), once written."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor is None and callback.best_model_path:
            return callback.best_model_path
    return None


def rating_checkpoint_path(trainer: pl.Trainer, ranking: ModelCheckpoint | None) -> str | None:
    """The lowest-validation-RMSE checkpoint, when a checkpoint callback other than ``ranking``
    keeps one (``callbacks.rating_checkpoint``), else None (as when ``ranking`` monitors RMSE
    itself: :func:`~recsys.training.loggers.distinct_checkpoints` dropped the repeat)."""
    for callback in trainer.checkpoint_callbacks:
        if (isinstance(callback, ModelCheckpoint) and callback is not ranking
                and callback.monitor == RATING_MONITOR and callback.best_model_path):
            return callback.best_model_path
    return None


def metrics_of_weights(module: TwoTowerModule, datamodule: ReviewDataModule, state_dict: dict, split: str,
                       progress: bool = True) -> dict[str, float]:
    """Metrics on ``split`` (``val`` or ``test``) of ``module`` with ``state_dict`` loaded, from a
    single-process trainer of its own that logs nowhere."""
    module.load_state_dict(state_dict)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=progress, enable_model_summary=False)
    run = trainer.validate if split == "val" else trainer.test
    return _scalars(run(module, datamodule, verbose=False)[0])


def evaluate_rating_checkpoint(module: TwoTowerModule, datamodule: ReviewDataModule, path: str) -> dict[str, float]:
    """Test RMSE and MAE of the rating checkpoint at ``path``, as ``rating_checkpoint/test/...``
    (tested apart, so that the run's loggers record one test: the best checkpoint's)."""
    state_dict = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    results = metrics_of_weights(module, datamodule, state_dict, "test", progress=False)
    log.info("Rating checkpoint (lowest val/rmse) %s: test RMSE %.4f", path, results["test/rmse"])
    return {f"{RATING_CHECKPOINT_KEY}/{name}": results[name] for name in ("test/rmse", "test/mae")}


def train(cfg: DictConfig) -> float | None:
    """Prepare the data, fit the model, test the best checkpoint and write the run's reports.

    Returns the monitored metric (``cfg.model.monitor``) of the best checkpoint, for sweeps.
    """
    started = time.perf_counter()
    for key in ("seed", "trainer.max_epochs", "model.min_steps"):  # before the data, which can take minutes
        whole_number_setting(cfg, key)
    testing = flag_setting(cfg, "test") if "test" in cfg else True
    resume, resumed = None, None
    if "baseline" not in cfg.model:
        check_monitor(cfg)
        check_accelerator(cfg)
        check_trainer_settings(cfg)
        resume = _resolve_checkpoint(cfg.get("ckpt_path"), cfg)
        if resume is not None and Path(resume).is_dir():
            raise FileNotFoundError(f"{folder_message(Path(resume), 'ckpt_path')}. A run resumes from its "
                                    "last.ckpt (ckpt_path=last: the newest run's)")
        if resume is not None and not Path(resume).is_file():
            raise FileNotFoundError(f"ckpt_path={resume}: no checkpoint there; give a run's checkpoints/last.ckpt, "
                                    "or ckpt_path=last for the newest one")
        resumed = check_resumable(Path(resume), cfg) if resume is not None else None
    pl.seed_everything(cfg.seed, workers=True)
    out = run_dir(cfg)
    datamodule: ReviewDataModule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    evaluated = ["val", "test"] if testing else ["val"]
    require_held_out(datamodule, evaluated)
    if "baseline" in cfg.model:
        return fit_baseline(cfg, datamodule, out, started, evaluated)
    epochs = training_epochs(cfg, datamodule)
    if resumed is not None:
        check_resumed_length(resumed, epochs)
    with open_dict(cfg):  # the run config (logged, and kept in checkpoints) holds the epochs run
        cfg.trainer.max_epochs = epochs
    module = build_module(cfg, datamodule)
    with closing_loggers(instantiate_loggers(cfg.get("logger"), dashboard_identity(cfg, out))) as loggers:
        curves = LearningCurves()
        callbacks = [*usable_callbacks(instantiate_callbacks(cfg.get("callbacks")), loggers), RandomStateCheckpoint(),
                     curves]
        if cfg.trainer.get("enable_progress_bar", True):
            callbacks += run_progress_bar(callbacks)
        if cfg.trainer.get("enable_model_summary", True):
            callbacks.append(ComponentSummary())  # in place of Lightning's (see ComponentSummary)
        trainer = built_trainer(cfg, logger=loggers or False, callbacks=callbacks, enable_model_summary=False)
        share_cpu_threads(trainer)
        run_config = plain_config(cfg)
        for logger in loggers:
            logger.log_hyperparams(run_config)
        with explained_interruption(partial(interruption_message, trainer), trainer.is_global_zero):
            trainer.fit(module, datamodule, ckpt_path=resume)
        fit_minutes = (time.perf_counter() - started) / 60
        # Taken before testing: a test from the best checkpoint restores the callbacks' states too.
        trained_curves, last_step = curves.frame, trainer.global_step
        best = getattr(monitoring_checkpoint(trainer, cfg.model.monitor), "best_model_path", None)
        with explained_interruption(partial(testing_interruption_message, best), trainer.is_global_zero):
            outcome = fit_outcome(trainer, module, datamodule, cfg.model.monitor, testing)
        outcome.curves, outcome.step = trained_curves, last_step
        outcome.metrics["train_minutes"] = fit_minutes
        outcome.metrics["total_minutes"] = (time.perf_counter() - started) / 60
        if outcome.monitored is not None:
            outcome.metrics[f"best_{cfg.model.monitor}"] = outcome.monitored
        if trainer.is_global_zero:  # in a distributed run, one process writes the reports
            write_reports(outcome, module, datamodule, loggers, out, cfg.model.monitor, run_config)
    return outcome.monitored if outcome.monitored is not None else outcome.metrics.get(cfg.model.monitor)


@dataclass
class FitOutcome:
    """What a fit left: its metrics (validation at the last epoch, the test figures of its
    checkpoints), the best checkpoint by the monitored metric and its value, the rating checkpoint,
    the latest epoch's checkpoint (``last``, offered where no validation chose a best one), the
    checkpoint files that the test metrics are of (``tested``, read by export.py), and the
    learning curves' rows (:class:`~recsys.training.callbacks.LearningCurves`) and the last step."""

    metrics: dict[str, float]
    best: str | None
    monitored: float | None
    rating: str | None
    last: str | None = None
    tested: dict[str, str] = field(default_factory=dict)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    step: int = 0  # the last optimiser step, where the test metrics are logged


def fit_outcome(trainer: pl.Trainer, module: TwoTowerModule, datamodule: ReviewDataModule, monitor: str,
                testing: bool) -> FitOutcome:
    """The fitted run's outcome; when ``testing``, with the test metrics of its best checkpoint
    (by ``monitor``) and of its rating checkpoint."""
    checkpoint = monitoring_checkpoint(trainer, monitor)
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    score = checkpoint.best_model_score if checkpoint is not None and best else None
    outcome = FitOutcome(
        metrics={k: v for k, v in _scalars(trainer.callback_metrics).items() if k.startswith("val/")},
        best=best,
        monitored=float(score) if score is not None else None,
        rating=rating_checkpoint_path(trainer, checkpoint),
        last=last_checkpoint_path(trainer),
    )
    # Without a validation there is no best checkpoint: the latest one holds the weights the run ended with.
    tested = best or outcome.last
    if testing:
        # A single-process test of its own; in a distributed run, evaluate.py tests it afterwards.
        if outcome.rating is not None and trainer.world_size == 1:
            # First, so that the best checkpoint's weights stay loaded for the reports.
            outcome.metrics.update(evaluate_rating_checkpoint(module, datamodule, outcome.rating))
            outcome.tested[RATING_CHECKPOINT_KEY] = Path(outcome.rating).name
        if checkpoint is not None and not best:
            log.warning("No best checkpoint by %s: training ended (step %d) before any validation; testing the "
                        "weights it ended with%s", monitor, trainer.global_step,
                        f" ({tested})" if tested else "")
        results = trainer.test(module, datamodule, ckpt_path=tested, verbose=False)
        outcome.metrics.update(results[0] if results else {})
        if tested:
            outcome.tested[CHECKPOINT_KEY] = Path(tested).name
    return outcome


def write_reports(outcome: FitOutcome, module: TwoTowerModule, datamodule: ReviewDataModule, loggers: list[Logger],
                  out: Path, monitor: str, config: dict) -> None:
    """``metrics.json``, the learning curves (``learning_curves.png`` and the rows it draws,
    ``learning_curves.csv``) and example recommendations in ``out``; the last two and the metrics,
    with the run ``config``, to the dashboards too (:func:`log_run_reports`); a summary on the console."""
    write_metrics(out / "metrics.json", {**outcome.metrics, **outcome.tested})
    outcome.curves.to_csv(out / "learning_curves.csv", index=False)
    curves = plot_learning_curves(outcome.curves, out / "learning_curves.png")
    examples = example_recommendations(module, datamodule)
    write_recommendations(examples, out / "recommendations.md")
    log_run_reports(loggers, config, outcome.metrics, outcome.step, examples, curves)
    steps = next_steps(outcome.best, monitor, outcome.rating, exportable_net(config["model"]["net"].get("_target_")),
                       outcome.last)
    log.info("Run directory: %s\n\n%s", out, console_summary(
        metrics_table(outcome.metrics), "\n".join(filter(None, [steps, *dashboard_lines(loggers)]))))


def console_summary(*blocks: str) -> str:
    """The end-of-run summary: the non-empty ``blocks`` (the metrics table, what to do next) one
    blank line apart."""
    return "\n\n".join(block for block in blocks if block)


def next_steps(best: str | None, monitor: str, rating: str | None, exportable: bool = True,
               last: str | None = None) -> str:
    """The commands that take a run's checkpoints further (evaluate, and export where the model is
    ``exportable``), for the console: ``best`` is the checkpoint of the best ``monitor``, ``rating``
    the rating checkpoint (or None), ``last`` the latest epoch's, offered where there is no ``best``
    (no validation ran)."""
    chosen = best or last
    if chosen is None:
        return ""
    lines = [f"Best checkpoint (by {monitor}): {best}" if best else
             f"No validation ran, so no checkpoint is the best by {monitor}; the last one: {last}"]
    if rating is not None and rating != chosen:
        lines.append(f"Rating checkpoint (lowest {RATING_MONITOR}): {rating}")
    lines.append(f"Evaluate it: python scripts/evaluate.py ckpt={chosen} split=test")
    if exportable:
        out = f"exports/{run_name(Path(chosen))}"
        lines.append(f"Export it for serving: python scripts/export.py ckpt={chosen} out={out}")
    return "\n".join(lines)


def fit_baseline(cfg: DictConfig, datamodule: ReviewDataModule, out: Path, started: float,
                 splits: list[str]) -> float | None:
    """Fit a non-neural baseline (``cfg.model.baseline``), evaluate it on ``splits`` with the
    two-tower metrics, write ``metrics.json`` and log the run config and metrics to the loggers."""
    from recsys.benchmarking.evaluation import evaluate_scorer

    baseline = hydra.utils.instantiate(cfg.model.baseline)
    baseline.fit(datamodule)
    ks = cfg.model.get("ks", (5, 10, 20))
    metrics = {"train_minutes": (time.perf_counter() - started) / 60}
    for split in splits:
        metrics.update(evaluate_scorer(baseline.user_scores, baseline.predict_ratings, datamodule, split, ks=ks))
    write_metrics(out / "metrics.json", metrics)  # with the recall curve, which the benchmark plots
    # To the dashboards too, so that a baseline is compared with trained models there.
    # The recall curve (K = 1..50) is for plots: the console and dashboards get the model's K.
    shown = {key: value for key, value in metrics.items() if shown_at(key, ks)}
    with closing_loggers(instantiate_loggers(cfg.get("logger"), dashboard_identity(cfg, out))) as loggers:
        log_final_metrics(loggers, plain_config(cfg), shown)
        dashboards = "\n".join(dashboard_lines(loggers))
    log.info("Wrote %s\n\n%s", out / "metrics.json", console_summary(metrics_table(shown), dashboards))
    return metrics.get(cfg.model.get("monitor", "val/recall@10"))


FROM_CHECKPOINT = "checkpoint"


def evaluate(ckpt: str | Path, split: str = "test", output_dir: str | Path | None = None,
             relevance_min_rating: float | str | None = FROM_CHECKPOINT,
             paths: DictConfig | None = None, breakdown: bool = False) -> dict[str, float]:
    """Metrics of a checkpoint on ``split`` (``val`` or ``test``), written to ``metrics.json``
    (in ``output_dir``, by default the checkpoint's run directory as ``metrics_<split>_<checkpoint>.json``:
    one file per checkpoint, as a run keeps a best-ranking and a rating checkpoint).

    ``relevance_min_rating`` counts only held-out items rated at least this as relevant (None:
    every one); by default the run's own ``data.relevance_min_rating``. Another value than the
    run's is named in the file (``..._min-rating-4.json``, ``..._every-held-out.json``). ``paths``
    (this invocation's ``paths`` config) is where to look for the data and caches where the run's
    own folders are not on this machine. ``breakdown`` also writes where the errors lie
    (:mod:`recsys.benchmarking.error_breakdown`) as ``breakdown.md`` beside ``metrics.json``
    (``breakdown_<split>_<checkpoint>.md`` beside the run)."""
    if split not in ("val", "test"):
        raise ValueError(f"split={split!r} is not allowed; use val or test")
    breakdown = checked_flag("breakdown", breakdown)
    path = Path(ckpt)
    cfg, checkpoint = load_checkpoint_config(path)
    suffix = ""
    if relevance_min_rating != FROM_CHECKPOINT and relevance_min_rating != cfg.data.get("relevance_min_rating"):
        check_relevance_min_rating(relevance_min_rating, "relevance_min_rating")
        cfg.data.relevance_min_rating = relevance_min_rating
        suffix = "_every-held-out" if relevance_min_rating is None else f"_min-rating-{relevance_min_rating:g}"
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = checkpoint_datamodule(cfg, checkpoint, path, split, paths=paths)
    module = build_module(cfg, datamodule)
    metrics = metrics_of_weights(module, datamodule, checkpoint["state_dict"], split)
    beside_run = path.parent.parent / f"metrics_{split}_{path.stem}{suffix}.json"
    target = Path(output_dir) / "metrics.json" if output_dir else beside_run
    write_metrics(target, metrics)
    log.info("Wrote %s\n\n%s", target, metrics_table(metrics))
    if breakdown:
        tables = model_error_breakdown(module, datamodule, split)
        written = write_breakdown(tables, target.with_name(target.name.replace("metrics", "breakdown", 1)).with_suffix(
            ".md"), f"Where the errors lie: the {split} split, {path.name}")
        log.info("Wrote %s\n\n%s\n\n%s", written, tables.rating.round(4).to_string(index=False),
                 tables.recall.round(4).to_string(index=False))
    return metrics
