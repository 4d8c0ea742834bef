"""The ``prepare_data.py`` entry: build a dataset's caches and describe it."""

from __future__ import annotations

import time

import hydra
from omegaconf import DictConfig

from recsys.data.datamodule import ReviewDataModule
from recsys.data.stats import compute_stats, render_stats


def prepare_and_describe(data_cfg: DictConfig) -> str:
    """Instantiate the DataModule of ``data_cfg``, build (or reuse) its caches, and return its
    statistics and the time each step took, as Markdown."""
    started = time.perf_counter()
    datamodule: ReviewDataModule = hydra.utils.instantiate(data_cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    elapsed = time.perf_counter() - started
    stats = compute_stats(datamodule.prepared, datamodule.item_tokens, datamodule.max_reviews)
    timings = ", ".join(f"{k} {v:.2f}" for k, v in datamodule.timings.items())
    return (
        f"{render_stats(stats)}\n"
        f"- Cache: {datamodule.prepared.cache_dir}\n"
        f"- Time: {elapsed:.2f} s in all ({timings})"
    )
