"""Keys of a run's ``metrics.json``: those that name checkpoints, and how a metric's name carries
its cutoff K. Free of heavy imports, so that readers of run directories (the cross-validation
driver, export) do not load torch to know them."""

from __future__ import annotations

from collections.abc import Collection

# The best checkpoint's file name: the metrics under ``test/`` are of it.
CHECKPOINT_KEY = "checkpoint"
# The rating checkpoint's file name; its test metrics are kept under ``rating_checkpoint/test/``.
RATING_CHECKPOINT_KEY = "rating_checkpoint"
# Figures of whole top-10 lists rather than ranking metrics at a cutoff: shown whatever K are.
LIST_METRICS = ("coverage", "popularity")


def metric_cutoff(key: str) -> tuple[str, int | None]:
    """``("test/recall", 10)`` for ``"test/recall@10"``; ``(key, None)`` for a metric without a cutoff."""
    base, _, k = key.rpartition("@")
    return (base, int(k)) if k.isdigit() else (key, None)


def shown_at(key: str, ks: Collection[int]) -> bool:
    """Whether a table of the cutoffs ``ks`` shows metric ``key``: ranking metrics at those K, and
    every other figure (coverage@10, popularity@10, those without a K)."""
    base, k = metric_cutoff(key)
    return k is None or k in ks or base.endswith(LIST_METRICS)
