"""Experiment loggers and callbacks from config; Weights & Biases offline unless configured."""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning import Callback
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from recsys.settings import plain_config
from recsys.training.report import markdown_table

log = logging.getLogger(__name__)


def wandb_account_configured() -> bool:
    """True when an API key is in the environment or ``wandb login`` stored one in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


# The WandbLogger settings that place a run in the dashboard, filled by dashboard_identity when unset.
DASHBOARD_KEYS = ("name", "group", "tags")


def is_wandb_entry(entry: Any) -> bool:
    """True for a ``logger`` group entry that instantiates Lightning's WandbLogger."""
    return isinstance(entry, Mapping) and str(entry.get("_target_", "")).endswith("WandbLogger")


def dashboard_identity(cfg: DictConfig, run_directory: Path) -> dict[str, Any]:
    """How a run is found and compared in the dashboard: its ``name`` (the run directory, relative
    to ``paths.output_dir`` when under it, e.g. ``mi_full/2026-12-05_15-16-04``; in a multirun, then
    the job's values of the swept settings, e.g. ``train/multirun-<time>/0 model.net.dim=64``), its ``tags`` (the
    dataset, the model's class and the split strategy) and, in a Hydra multirun (``-m``), its
    ``group`` (the sweep's folder), so that a sweep's runs are averaged and compared together."""
    task = cfg.get("task_name", "train")
    sweep = HydraConfig.get().sweep.dir if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN \
        else None
    run_directory = Path(run_directory).resolve()
    output_dir = Path(cfg.paths.output_dir).resolve()
    if run_directory.is_relative_to(output_dir) and run_directory != output_dir:
        name = run_directory.relative_to(output_dir).as_posix()
    elif sweep is not None:
        name = f"{task}/{Path(sweep).name}/{run_directory.name}"
    else:
        name = f"{task}/{run_directory.name}"
    if sweep is not None:
        name = " ".join([name, *swept_settings(Path(sweep), list(HydraConfig.get().overrides.task))])
    model = OmegaConf.select(cfg, "model.baseline._target_") or OmegaConf.select(cfg, "model.net._target_")
    tags = [str(cfg.data.dataset.name), str(model).rsplit(".", 1)[-1], f"{cfg.data.split.strategy} split"]
    identity: dict[str, Any] = {"name": name, "tags": tags}
    if sweep is not None:
        identity["group"] = f"{task}/{Path(sweep).name}"
    return identity


def swept_settings(sweep_dir: Path, job_overrides: list[str]) -> list[str]:
    """This job's values of the settings that its Hydra multirun sweeps, e.g. ``["model.net.dim=64"]``
    for a job of ``-m model.net.dim=64,128 data=magazine``: the job's overrides whose key the
    sweep's command line gave several values (read from the ``multirun.yaml`` that Hydra's basic
    sweeper writes in ``sweep_dir``); none where that file is not there (another sweeper)."""
    sweep_file = sweep_dir / "multirun.yaml"
    if not sweep_file.is_file():
        return []
    sweep_overrides = OmegaConf.select(OmegaConf.load(sweep_file), "hydra.overrides.task", default=None) or []
    parser = OverridesParser.create()
    swept = {o.get_key_element() for o in parser.parse_overrides(list(sweep_overrides)) if o.is_sweep_override()}
    return [str(o.input_line) for o in parser.parse_overrides(job_overrides) if o.get_key_element() in swept]


def set_dashboard_group(cfg: DictConfig, group: str) -> None:
    """Put the runs of ``cfg`` in the W&B group ``group`` (the folds of a cross-validation, the
    seeds of a benchmarked model), unless its config names one."""
    for entry in (cfg.get("logger") or {}).values():
        if is_wandb_entry(entry) and not entry.get("group"):
            entry.group = group


def instantiate_loggers(logger_cfg: DictConfig | None, identity: Mapping[str, Any] | None = None) -> list[Logger]:
    """One logger per entry of the ``logger`` group; a WandbLogger with ``offline: null`` runs
    offline (no network, no prompt) unless an account is configured or WANDB_MODE says otherwise.
    ``identity`` (see :func:`dashboard_identity`) fills a WandbLogger's name, group and tags where
    the config leaves them unset."""
    loggers: list[Logger] = []
    for name, entry in (logger_cfg or {}).items():
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            continue
        entry = plain_config(entry)
        if is_wandb_entry(entry):
            for key in DASHBOARD_KEYS:
                if not entry.get(key) and identity and identity.get(key):
                    entry[key] = identity[key]
            # Lightning's offline WandbLogger sets WANDB_MODE=dryrun (wandb's old word for offline):
            # a second run in the same process (a Hydra multirun's next job) reads it.
            mode = os.environ.get("WANDB_MODE")
            if entry.get("offline") is None:
                entry["offline"] = mode in ("offline", "dryrun") or (mode is None and not wandb_account_configured())
            if entry["offline"]:
                os.environ["WANDB_MODE"] = "offline"
            os.environ.setdefault("WANDB_SILENT", "true")
            Path(entry.get("save_dir", ".")).mkdir(parents=True, exist_ok=True)
            state = "offline" if entry["offline"] else "disabled by WANDB_MODE" if mode == "disabled" else "online"
            log.info("wandb logger %s (%s): run %s", name, state, entry.get("name"))
        logger = hydra.utils.instantiate(entry)
        drop_unset_wandb_anonymous(logger)
        loggers.append(logger)
    return loggers


@contextmanager
def closing_loggers(loggers: list[Logger]) -> Iterator[list[Logger]]:
    """``loggers``, whose W&B runs end with the block: marked failed if it raises. Lightning leaves
    a W&B run open, and a later WandbLogger in the same process (the next job of a Hydra
    multirun, or of a notebook) would log into it instead of starting its own."""
    try:
        yield loggers
    except BaseException:
        finish_loggers(loggers, succeeded=False)
        raise
    finish_loggers(loggers, succeeded=True)


def dashboard_lines(loggers: list[Logger]) -> list[str]:
    """Where each logger keeps the run, for the console: the W&B run (with the command that
    uploads an offline one), TensorBoard's command, the CSV file."""
    lines = []
    for logger in loggers:
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            run = logger.experiment
            if getattr(run, "offline", False):
                lines.append(f"W&B run (offline), to upload it: wandb sync {Path(run.dir).parent}")
            elif getattr(run, "url", None):
                lines.append(f"W&B run: {run.url}")
        elif isinstance(logger, TensorBoardLogger):
            lines.append(f"TensorBoard: tensorboard --logdir {logger.log_dir}")
        elif isinstance(logger, CSVLogger):
            lines.append(f"CSV log: {Path(logger.log_dir) / 'metrics.csv'}")
    return lines


def finish_loggers(loggers: list[Logger], succeeded: bool) -> None:
    """End the W&B run of each WandbLogger that started one, with its exit status."""
    for logger in loggers:
        # Lightning starts the run on first use (a private attribute holds it): do not start one to end it.
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish(exit_code=0 if succeeded else 1)


def log_final_metrics(loggers: list[Logger], config: dict[str, Any], metrics: Mapping[str, float]) -> None:
    """A run without a Lightning trainer (a fitted baseline) to ``loggers``: its config, and its
    metrics as one step (and as the W&B run's summary and TensorBoard's hyperparameters, where
    trained runs keep their final figures)."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(config, metrics=dict(metrics), step=0)
        else:
            logger.log_hyperparams(config)
            logger.log_metrics(dict(metrics), step=0)
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(dict(metrics))
        logger.save()


def log_run_reports(loggers: list[Logger], config: dict[str, Any], metrics: Mapping[str, float], step: int,
                    recommendations: pd.DataFrame, curves: Path | None) -> None:
    """A trained run's reports to the dashboards: the final ``metrics`` (W&B: the run's summary;
    TensorBoard: the HParams tab, the run's config beside them, so that runs compare by their
    results), the example ``recommendations`` (a W&B table; TensorBoard text) and the ``curves``
    PNG. ``step`` is the run's last, where its test metrics are logged: TensorBoard logs the
    HParams tab's figures as scalars again, so the validation metrics, logged one step earlier,
    are left to their charts (``best_val/...`` stands for them)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_table("recommendations", dataframe=recommendations)
            if curves is not None:
                logger.log_image("learning_curves", [str(curves)])
            logger.experiment.summary.update(dict(metrics))
        elif isinstance(logger, TensorBoardLogger):
            final = {k: v for k, v in metrics.items() if not k.startswith("val/")}
            logger.log_hyperparams(config, metrics=final, step=step)
            logger.experiment.add_text("recommendations", markdown_table(recommendations), step)
            if curves is not None:
                from matplotlib.image import imread

                logger.experiment.add_image("learning_curves", imread(curves)[..., :3], step, dataformats="HWC")
            logger.save()


def drop_unset_wandb_anonymous(logger: Logger) -> None:
    """Remove the ``anonymous=None`` that Lightning's WandbLogger always hands to ``wandb.init``:
    wandb (0.31 here) warns that the setting has no effect whenever it is given, even as None."""
    init_kwargs = getattr(logger, "_wandb_init", None)  # Lightning's private store of wandb.init's arguments
    if isinstance(init_kwargs, dict) and "anonymous" in init_kwargs and init_kwargs["anonymous"] is None:
        del init_kwargs["anonymous"]


def instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    """One callback per entry of the ``callbacks`` group."""
    return [
        hydra.utils.instantiate(entry)
        for entry in (callbacks_cfg or {}).values()
        if isinstance(entry, DictConfig) and "_target_" in entry
    ]


def usable_callbacks(callbacks: list[Callback], loggers: list[Logger]) -> list[Callback]:
    """``callbacks`` without those that need a logger (the learning-rate monitor) when there is
    none, and without checkpoints that repeat an earlier one's (see :func:`distinct_checkpoints`)."""
    from pytorch_lightning.callbacks import LearningRateMonitor

    callbacks = distinct_checkpoints(callbacks)
    if loggers:
        return callbacks
    dropped = [type(c).__name__ for c in callbacks if isinstance(c, LearningRateMonitor)]
    if dropped:
        log.info("No logger: not using %s", ", ".join(dropped))
    return [c for c in callbacks if not isinstance(c, LearningRateMonitor)]


def distinct_checkpoints(callbacks: list[Callback]) -> list[Callback]:
    """``callbacks`` without a ``ModelCheckpoint`` that keeps the same epochs as an earlier one
    (same monitor, mode and frequency): with ``model.monitor=val/rmse`` the best checkpoint is
    already the rating checkpoint, and Lightning refuses two checkpoints with one state key."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    kept, keys = [], set()
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint):
            if callback.state_key in keys:
                log.info("Not using a second checkpoint of %s (%s): it would repeat the first",
                         callback.monitor, callback.mode)
                continue
            keys.add(callback.state_key)
        kept.append(callback)
    return kept
