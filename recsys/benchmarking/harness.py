"""Train and evaluate every model on the same data, split and metrics; one process per run."""

from __future__ import annotations

import json
import logging
import multiprocessing
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from recsys.cli import exit_status
from recsys.data.sources import DatasetFiles

log = logging.getLogger(__name__)

MODELS = ("popularity", "bias", "ease", "text_ease", "zero_shot", "mf", "two_tower")
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def configured_dataset(name: str, config_dir: Path = CONF_DIR) -> DatasetFiles:
    """The raw files of dataset config ``name`` (``conf/data/<name>.yaml``'s ``dataset``, its defaults
    list applied), for code that reads a shipped dataset without a training run. An unknown name
    fails as the override ``data=<name>`` does, listing the configs."""
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return instantiate(compose("train", overrides=[f"data={name}"]).data.dataset)


@dataclass
class RunSpec:
    """One model on one split: ``split`` is ``random`` (with ``seed``) or ``temporal``."""

    model: str
    split: str
    seed: int
    overrides: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.model}-{self.split}-seed{self.seed}"


def run_overrides(spec: RunSpec, data: str) -> list[str]:
    """The ``train`` overrides of ``spec`` (the full MI schedule for the two-tower model on MI)."""
    overrides = [f"data={data}", f"model={spec.model}", f"seed={spec.seed}", f"data.split.strategy={spec.split}"]
    if spec.model == "two_tower" and data == "musical_instruments":
        overrides.append("experiment=mi_full")
    return [*overrides, *spec.overrides]


def compose_training(overrides: list[str], out: Path, config_dir: Path = CONF_DIR) -> DictConfig:
    """The ``train`` config of ``overrides`` (CSV logging, test pass), with ``out`` as its run directory."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose("train", overrides=["logger=csv", "test=true", *overrides, f"hydra.run.dir={out}"],
                       return_hydra_config=True)


def _train_in_child(overrides: list[str], out: Path, threads: int | None, group: str | None,
                    connection: Connection) -> None:
    """Train/evaluate one run; send its metrics, time and peak RSS through ``connection``.
    ``threads``: torch's CPU threads in this process (its share of the cores when runs go side by side);
    ``group``: the W&B group of the run, if it logs there."""
    import torch
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from recsys.cli import quiet_library_noise
    from recsys.training.loggers import set_dashboard_group
    from recsys.training.run import train

    if threads is not None:
        torch.set_num_threads(threads)
    try:
        cfg = compose_training(overrides, out)
        OmegaConf.set_readonly(cfg.hydra, False)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(out)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]  # registered above; a run config does not carry it (as in a Hydra app)
            if group is not None:
                set_dashboard_group(cfg, group)
        started = time.perf_counter()
        with quiet_library_noise():  # as scripts/train.py runs it
            train(cfg)
        minutes = (time.perf_counter() - started) / 60
        metrics = json.loads((out / "metrics.json").read_text())
        if "baseline" not in cfg.model:
            metrics.update(_network_metrics(cfg, out))
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        connection.send({"ok": True, "metrics": metrics, "minutes": minutes, "peak_mb": peak_mb})
    except Exception as err:  # the parent reports which run failed and why
        connection.send({"ok": False, "error": f"{type(err).__name__}: {err}"})
    except KeyboardInterrupt:  # Ctrl-C reaches the parent too, which says so: no traceback from here
        sys.exit(exit_status(signal.SIGINT))


def best_checkpoint(run_dir: Path) -> Path:
    """The best checkpoint (``epochNN.ckpt``) of the training run in ``run_dir``; it must be the only one."""
    checkpoints = sorted((run_dir / "checkpoints").glob("epoch*.ckpt"))
    if len(checkpoints) != 1:
        raise RuntimeError(f"expected the one best checkpoint in {run_dir / 'checkpoints'}, found {len(checkpoints)}")
    return checkpoints[0]


def _network_metrics(cfg: DictConfig, out: Path) -> dict:
    """Coverage, popularity and the recall curve of the best checkpoint, from the same evaluation
    as the baselines (RMSE and the @K metrics come from training's own test pass)."""
    import torch

    from recsys.benchmarking.evaluation import evaluate_scorer, network_scorer
    from recsys.training.checkpoints import checkpoint_datamodule
    from recsys.training.run import build_module

    path = best_checkpoint(out)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    datamodule = checkpoint_datamodule(cfg, checkpoint, path, "test")
    module = build_module(cfg, datamodule)
    module.load_state_dict(checkpoint["state_dict"])
    module.attach(datamodule.catalog())
    scores = evaluate_scorer(network_scorer(module, datamodule), None, datamodule, "test")
    return {k: v for k, v in scores.items() if "coverage" in k or "popularity" in k or k.startswith("test/recall@")}


def require_fresh(run_dirs: list[Path], option: str) -> None:
    """Refuse run folders that hold files of an earlier run: its checkpoints would be taken for
    this run's (a reused folder gave a cross-validation report stale recall figures)."""
    used = [d for d in run_dirs if d.is_dir() and any(d.iterdir())]
    if used:
        raise FileExistsError(
            f"{used[0]} holds files of an earlier run ({len(used)} such folder(s)); remove them or "
            f"choose another {option}"
        )


def run_in_process(target: Callable[..., None], args: tuple, name: str) -> dict:
    """``target(*args, connection)`` in a fresh spawned process; returns the dict it sends through
    ``connection``, or raises: with the error it sent (``{"ok": False, "error": ...}``), or with
    how the process ended if it ended without sending (killed for memory, say) instead of waiting
    for a result that will never come."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(*args, sender))
    process.start()
    sender.close()  # the child holds its own end: the pipe now reports end-of-file when the child ends
    try:
        result = receiver.recv()
    except EOFError:
        process.join()
        ended = _exit_reason(process.exitcode)
        raise RuntimeError(f"{name} failed: its process ended without a result ({ended})") from None
    process.join()
    if not result.pop("ok"):
        raise RuntimeError(f"{name} failed: {result['error']}")
    return result


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        signal_name = signal.Signals(-exitcode).name
        hint = ": out of memory?" if signal_name == "SIGKILL" else ""
        return f"killed by {signal_name}{hint}"
    return f"exit status {exitcode}"


def run_training(overrides: list[str], out: Path, name: str, threads: int | None = None,
                 group: str | None = None) -> dict:
    """``scripts/train.py`` with ``overrides`` in a fresh process (clean peak memory), files under
    ``out``; returns ``{"metrics", "minutes", "peak_mb"}`` or raises with the run's error.
    ``threads``: torch's CPU threads in that process (default: torch's own choice, all cores);
    ``group``: the W&B group of the run when it logs there (``logger=wandb``)."""
    result = run_in_process(_train_in_child, (list(overrides), out, threads, group), name)
    log.info("%s: %.2f min, %.0f MB", name, result["minutes"], result["peak_mb"])
    return result


def run(spec: RunSpec, out: Path, data: str, group: str | None = None) -> dict:
    """Run ``spec`` in a fresh process (in the W&B group ``group``, if it logs there); its record for the report."""
    result = run_training(run_overrides(spec, data), out, spec.name, group=group)
    return {"model": spec.model, "split": spec.split, "seed": spec.seed, **result}


def run_benchmark(data: str, seeds: list[int], models: list[str], out: Path, work: Path,
                  overrides: list[str] | None = None) -> list[dict]:
    """Every model on the random split for each seed and on the temporal split (seed of the
    first), each run's files under ``work``; learning curves of trained networks are copied to
    ``out``. Returns the run records (see :mod:`recsys.benchmarking.report`)."""
    import shutil

    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from: {', '.join(MODELS)}")
    specs = [RunSpec(m, "random", s, list(overrides or [])) for s in seeds for m in models]
    specs += [RunSpec(m, "temporal", seeds[0], list(overrides or [])) for m in models]
    require_fresh([work / spec.name for spec in specs], "--work folder")
    records = []
    for spec in specs:
        run_dir = work / spec.name
        # One W&B group per model and split: its seeds side by side.
        records.append(run(spec, run_dir, data, group=f"benchmark/{work.name}/{spec.model}-{spec.split}"))
        curves = run_dir / "learning_curves.png"
        if curves.exists():
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(curves, out / f"learning_curves_{spec.name}.png")
    return records
