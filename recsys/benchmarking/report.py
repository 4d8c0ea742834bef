"""The results report: a Markdown table (mean ± std over seeds) and PNG plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = {
    "test/rmse": "RMSE", "test/mae": "MAE",
    "test/precision@10": "P@10", "test/recall@10": "R@10", "test/ndcg@10": "NDCG@10",
    "test/precision@20": "P@20", "test/recall@20": "R@20", "test/ndcg@20": "NDCG@20",
    "test/coverage@10": "coverage@10", "test/popularity@10": "popularity@10",
    "minutes": "train min", "peak_mb": "peak MB",
}

DIGITS = {"test/popularity@10": 1, "peak_mb": 0, "minutes": 2}


def results_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run: model, split, seed and the report's columns."""
    rows = []
    for record in records:
        row = {"model": record["model"], "split": record["split"], "seed": record["seed"]}
        row.update({key: record["metrics"].get(key, np.nan) for key in COLUMNS if key.startswith("test/")})
        row["minutes"], row["peak_mb"] = record["minutes"], record["peak_mb"]
        rows.append(row)
    return pd.DataFrame(rows)


def mean_std_cell(values: pd.Series, digits: int) -> str:
    """``mean ± sample std`` of ``values`` (NaN left out), the value alone for one, ``–`` for none."""
    values = values.dropna()
    if values.empty:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def results_table(frame: pd.DataFrame, split: str) -> str:
    """Markdown table of ``split``: mean ± std over seeds when there are several."""
    part = frame[frame["split"] == split]
    header = "| model | " + " | ".join(COLUMNS.values()) + " |"
    lines = [header, "|---|" + "---:|" * len(COLUMNS)]
    for model, rows in part.groupby("model", sort=False):
        cells = [mean_std_cell(rows[key], DIGITS.get(key, 4)) for key in COLUMNS]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_recall_curves(records: list[dict], split: str, path: Path, max_k: int = 50) -> Path:
    """recall@K for K = 1..max_k, one line per model (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6.5, 4.2))
    by_model: dict[str, list[list[float]]] = {}
    for record in records:
        if record["split"] == split:
            curve = [record["metrics"].get(f"test/recall@{k}", np.nan) for k in range(1, max_k + 1)]
            by_model.setdefault(record["model"], []).append(curve)
    for model, curves in by_model.items():
        axis.plot(range(1, max_k + 1), np.nanmean(np.array(curves), axis=0), label=model)
    axis.set_xlabel("K")
    axis.set_ylabel("recall@K (test)")
    axis.set_title(f"recall@K, {split} split")
    axis.grid(alpha=0.3)
    axis.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(records: list[dict], directory: Path, data: str, command: str) -> Path:
    """``directory/results.md`` with a table per split, and the recall@K plots next to it."""
    frame = results_frame(records)
    parts = [f"# Results: {data}", "", f"Made by `{command}`.", ""]
    for split in frame["split"].unique():
        seeds = sorted(frame.loc[frame["split"] == split, "seed"].unique())
        plot = plot_recall_curves(records, split, directory / f"recall_at_k_{split}.png")
        parts += [f"## {split} split (seeds {', '.join(map(str, seeds))})", "", results_table(frame, split), "",
                  f"![recall@K]({plot.name})", ""]
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(directory / "results.csv", index=False)
    path = directory / "results.md"
    path.write_text("\n".join(parts))
    return path
