"""Summary statistics of a prepared dataset, rendered as Markdown tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.prepared import PreparedData
from recsys.data.splits import SPLIT_NAMES, cold_start_pairs
from recsys.data.tokenization import TokenizedTexts


@dataclass
class DatasetStats:
    """What ``scripts/prepare_data.py`` prints."""

    name: str
    splits: pd.DataFrame
    ratings: pd.DataFrame
    item_sources: dict[str, int]
    median_history_reviews: float
    median_item_document_tokens: float
    files: pd.DataFrame


def compute_stats(data: PreparedData, item_tokens: TokenizedTexts, max_reviews: int) -> DatasetStats:
    """Counts per split, rating histogram, text coverage, history lengths (training reviews per
    user with any, after the ``max_reviews`` cap) and item-document lengths in tokens (with the
    encoder's special tokens)."""
    table = data.interactions
    has_text = table["text"].fillna("").str.strip() != ""
    cold_start = cold_start_pairs(table)
    rows = []
    for name in (*SPLIT_NAMES, "all"):
        part = table if name == "all" else table[table["split"] == name]
        rows.append({
            "split": name,
            "interactions": len(part),
            "users": part["user_id"].nunique(),
            "items": part["item_id"].nunique(),
            "mean rating": round(float(part["rating"].mean()), 3) if len(part) else float("nan"),
            "with review text": f"{100 * has_text[part.index].mean():.2f}%" if len(part) else "-",
            **{
                f"with a new {kind}": f"{100 * cold_start.at[name, f'new_{kind}'] / len(part):.2f}%"
                if name in cold_start.index and len(part) else "-"
                for kind in ("user", "item")
            },
        })
    stars = table["rating"].round().astype(int)
    ratings = pd.crosstab(stars, table["split"]).reindex(index=range(1, 6), columns=list(SPLIT_NAMES), fill_value=0)
    ratings.index.name = "stars"
    lengths = data.histories.lengths()
    capped = np.minimum(lengths[lengths > 0], max_reviews)
    reports = data.reports
    return DatasetStats(
        name=data.name,
        splits=pd.DataFrame(rows),
        ratings=ratings.reset_index(),
        item_sources=data.item_documents["source"].value_counts().to_dict(),
        median_history_reviews=float(np.median(capped)) if len(capped) else 0.0,
        median_item_document_tokens=float(np.median(item_tokens.lengths())),
        files=pd.DataFrame([
            {
                "file": Path(r.path).name,
                "lines read": r.lines_read,
                "rows kept": r.rows_kept,
                "bad lines skipped": r.rows_skipped,
                "duplicates dropped": r.duplicates_dropped,
            }
            for r in reports
        ]),
    )


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join(" ---: " if pd.api.types.is_numeric_dtype(frame[c]) else " --- " for c in frame.columns) + "|"
    body = ["| " + " | ".join(f"{v:,}" if isinstance(v, int | np.integer) else str(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def render_stats(stats: DatasetStats) -> str:
    """The statistics as Markdown (readable in a terminal, pasteable into a README)."""
    items = sum(stats.item_sources.values())
    sources = ", ".join(
        f"{source} {count:,} ({100 * count / items:.1f}%)" for source, count in sorted(stats.item_sources.items())
    )
    return "\n".join([
        f"### {stats.name}",
        "",
        _markdown(stats.splits),
        "",
        "Ratings (count per split):",
        "",
        _markdown(stats.ratings),
        "",
        "Raw files:",
        "",
        _markdown(stats.files),
        "",
        f"- Item documents by source (training split only): {sources}",
        "- With a new user / item: held-out pairs whose user / item has no training review (cold start)",
        f"- Median user history (training reviews, capped): {stats.median_history_reviews:g}",
        f"- Median item document: {stats.median_item_document_tokens:g} tokens",
    ])
