"""Free-text queries: how well the Recommender finds an item from a held-out review of it, read
as a query, as the weight of the query-document text similarity in the ranking varies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from recsys.serving.recommender import Recommender

# What a query holds of a held-out review: its summary (a few words, as a search is), or the whole review.
QUERY_FORMS = {
    "summary": lambda reviews: reviews["summary"].fillna("").astype(str),
    "summary + text": lambda reviews: reviews["summary"].fillna("").astype(str) + ". " + reviews["text"].fillna(""),
}
TEXT_ONLY = float("inf")  # the weight label of ranking by the text similarity alone (zero-shot)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """0-based rank of each row's target item among all items (ties counted in its favour)."""
    true = scores.gather(1, targets[:, None])
    return (scores > true).sum(1).numpy()


def query_benchmark(recommender: Recommender, held_out: pd.DataFrame, weights: list[float],
                    k: int = 10) -> pd.DataFrame:
    """One row per query form and weight (and ``TEXT_ONLY``): hit@k (the reviewed item in the top k
    of the whole catalog), MRR and median rank, over the reviews of ``held_out`` (columns item_id,
    summary, text; reviews of items outside the export are dropped)."""
    known = held_out[held_out["item_id"].isin(recommender.item_position)]
    targets = torch.tensor([recommender.item_position[i] for i in known["item_id"]])
    rows = []
    for form, make in QUERY_FORMS.items():
        vectors, texts = recommender.encode_queries(make(known).tolist())
        for weight in [*weights, TEXT_ONLY]:
            if weight == TEXT_ONLY:
                scores = recommender.query_similarities(vectors, texts)[1]
            else:
                scores = recommender.query_scores(vectors, texts, weight)
            ranks = target_ranks(scores, targets)
            rows.append({"query": form, "text weight": weight, "queries": len(ranks),
                         f"hit@{k}": float(np.mean(ranks < k)), "MRR": float(np.mean(1.0 / (ranks + 1))),
                         "median rank": float(np.median(ranks + 1))})
    return pd.DataFrame(rows)


def _weight_label(weight: float, default_weight: float) -> str:
    if weight == TEXT_ONLY:
        return "text only"
    return f"{weight:g}" + (" (default)" if weight == default_weight else "")


def benchmark_table(results: dict[str, pd.DataFrame], default_weight: float, k: int = 10) -> str:
    """Markdown table of :func:`query_benchmark` results by split, with each row's hit@k as a ratio
    of the towers' alone (weight 0) measured in the same run."""
    hit = f"hit@{k}"
    lines = [f"| split | query | text weight | queries | {hit} | vs towers alone | MRR | median rank |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for split, frame in results.items():
        for form, rows in frame.groupby("query", sort=False):
            towers = rows.loc[rows["text weight"] == 0, hit]
            base = float(towers.iloc[0]) if len(towers) else 0.0
            for row in rows.to_dict("records"):
                ratio = f"{row[hit] / base:.2f}x" if base > 0 else ""
                weight = _weight_label(row["text weight"], default_weight)
                lines.append(f"| {split} | {form} | {weight} | {row['queries']} | {row[hit]:.3f} | {ratio} | "
                             f"{row['MRR']:.3f} | {row['median rank']:.0f} |")
    return "\n".join(lines) + "\n"
