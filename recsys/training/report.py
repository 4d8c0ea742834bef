"""What a training run leaves behind: metrics.json, learning curves, example recommendations."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from pytorch_lightning.utilities import move_data_to_device

from recsys.data.datamodule import ReviewDataModule
from recsys.training.metrics_keys import metric_cutoff
from recsys.training.ranking import top_k_from_scores

if TYPE_CHECKING:
    from recsys.training.module import TwoTowerModule

log = logging.getLogger(__name__)
SNIPPET_CHARS = 80


def write_metrics(path: Path, metrics: dict) -> Path:
    """Write ``metrics`` as sorted, indented JSON (numbers as floats)."""
    numbers = int | float | np.floating | torch.Tensor
    clean = {k: (float(v) if isinstance(v, numbers) else v) for k, v in metrics.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(clean.items())), indent=2))
    return path


def _figure(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) >= 1 else f"{value:.4f}"


def _aligned(rows: list[list[str]], labels: int) -> list[str]:
    """``rows`` (the first one the header) as text columns: the first ``labels`` left-aligned, the figures right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i < labels else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]


def metrics_table(metrics: Mapping[str, float], splits: Sequence[str] = ("val", "test")) -> str:
    """``metrics`` as aligned text for the console: a row per split of its errors and losses
    (``val/rmse``...), a row per split and K of its ranking metrics (``test/recall@10``...), then
    every other figure (minutes, the rating checkpoint's error) on a line of its own."""
    by_split: dict[str, dict[str, float]] = {}
    by_k: dict[tuple[str, int], dict[str, float]] = {}
    others: list[tuple[str, float]] = []
    for key, value in metrics.items():
        split, _, name = key.partition("/")
        base, k = metric_cutoff(name)
        if split not in splits or not name:
            if isinstance(value, int | float):
                others.append((key, value))
        elif k is not None:
            by_k.setdefault((split, k), {})[base] = value
        else:
            by_split.setdefault(split, {})[name] = value
    order = {split: i for i, split in enumerate(splits)}
    blocks = []
    if by_split:
        names = list(dict.fromkeys(name for values in by_split.values() for name in values))
        rows = [["split", *names]]
        rows += [[split, *(_figure(by_split[split][n]) if n in by_split[split] else "" for n in names)]
                 for split in sorted(by_split, key=lambda split: order[split])]
        blocks.append(_aligned(rows, labels=1))
    if by_k:
        names = list(dict.fromkeys(name for values in by_k.values() for name in values))
        rows = [["split", "K", *names]]
        rows += [[split, str(k), *(_figure(by_k[split, k][n]) if n in by_k[split, k] else "" for n in names)]
                 for split, k in sorted(by_k, key=lambda sk: (order[sk[0]], sk[1]))]
        blocks.append(_aligned(rows, labels=1))
    if others:
        width = max(len(key) for key, _ in others)
        blocks.append([f"{key.ljust(width)}  {_figure(value)}" for key, value in others])
    return "\n\n".join("\n".join(block) for block in blocks)


LEARNING_CURVE_PANELS = (
    ("training loss", "step", ("train/loss", "train/epoch_loss")),
    ("validation RMSE", "epoch", ("val/rmse",)),
    ("validation recall@10", "epoch", ("val/recall@10",)),
)


def learning_curve_series(frame: pd.DataFrame) -> list[tuple[str, str, dict[str, pd.DataFrame]]]:
    """The learning curves' panels of a frame of logged rows (``epoch``, ``step`` and metric
    columns): (title, x column, {metric: rows of x and metric}).

    The training loss panel holds the steps' losses and each epoch's mean (``train/epoch_loss``, at
    the epoch's last step; a CSV log of fewer steps than its logging interval has only the latter).
    Panels and series without a logged value are left out.
    """
    panels = []
    for title, x, columns in LEARNING_CURVE_PANELS:
        series = {c: frame[[x, c]].dropna() for c in columns if c in frame.columns and x in frame.columns}
        series = {c: rows for c, rows in series.items() if len(rows)}
        if series:
            panels.append((title, x, series))
    return panels


def plot_learning_curves(frame: pd.DataFrame, out_png: Path) -> Path | None:
    """PNG of the training loss by step and the validation metrics by epoch, from the rows of
    :class:`~recsys.training.callbacks.LearningCurves` (or a CSVLogger file read as a frame);
    None, and no file, when nothing was recorded."""
    panels = learning_curve_series(frame)
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4))
    for axis, (title, x, series) in zip(np.atleast_1d(axes), panels, strict=False):
        for column, rows in series.items():
            per_step = column == "train/loss"
            style = {"alpha": 0.6, "label": "per step"} if per_step else {"marker": "o", "label": "epoch mean"}
            axis.plot(rows[x], rows[column], markersize=3, **style)
        if len(series) > 1:
            axis.legend(fontsize=8)
        axis.set_title(title)
        axis.set_xlabel(x)
        ticks = sorted(set().union(*(rows[x].unique() for rows in series.values())))
        if x == "epoch" and len(ticks) <= 12:
            axis.set_xticks(ticks)
        else:
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def _snippet(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


@torch.no_grad()
def example_recommendations(module: TwoTowerModule, datamodule: ReviewDataModule, split: str = "test",
                            num_users: int = 3, k: int = 10) -> pd.DataFrame:
    """For the first ``num_users`` users of ``split``: their history summaries and their top-k
    items (excluding training items, ranked as the run's metrics rank) with their ranking score
    (the cosine, or its fusion with EASE: :meth:`TwoTowerModule.ranking_scores`), cosine and
    predicted stars."""
    module.eval()
    data = datamodule.prepared
    collate = datamodule.collator(split)
    pairs = data.pairs[split]
    _, first = np.unique(pairs.user, return_index=True)
    batch = move_data_to_device(collate(np.sort(first)[:num_users].tolist()), module.device)
    users = module.net.user_vectors(batch)
    items = module.net.catalog_vectors(data.num_items)
    ids = batch.user.cpu().numpy()
    scores = module.ranking_scores(users, ids, items)
    top = top_k_from_scores(lambda start, stop: scores[start:stop], ids, k, data.train_items, max(1, len(ids)),
                            data.num_items).to(users.device)
    known = torch.from_numpy(data.train_items.rows(ids)).to(top.device)
    rows = []
    for row, user in enumerate(batch.user.tolist()):
        history = batch.history_reviews[row][batch.history_mask[row]].tolist()
        summaries = " / ".join(str(s) for s in data.train_reviews["summary"].iloc[history].tolist()[-5:])
        # Fewer than k where the catalog holds fewer unseen items (the top-k is filled with seen ones).
        shown = top[row][~known[row, top[row]]]
        offset = module.net.user_offset(batch.history_ratings[row : row + 1], batch.history_mask[row : row + 1])
        stars, _ = module.net.score(users[row].expand(len(shown), -1), items[shown], shown, offset.expand(len(shown)))
        for rank, (item, predicted) in enumerate(zip(shown.tolist(), stars.tolist(), strict=True), start=1):
            rows.append({
                "user_id": data.user_ids[user],
                "history (latest summaries)": summaries,
                "rank": rank,
                "item_id": data.item_ids[item],
                "item": _snippet(data.item_documents["document"].iloc[item]),
                "score": round(float(scores[row, item]), 4),
                "cosine": round(float(users[row] @ items[item]), 4),
                "predicted stars": round(float(predicted), 2),
            })
    return pd.DataFrame(rows)


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a Markdown table (``|`` in a cell written as ``/``)."""
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_recommendations(frame: pd.DataFrame, path: Path) -> Path:
    """The example recommendations ``frame`` as a Markdown table at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown_table(frame))
    return path
