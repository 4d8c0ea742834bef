"""Serving speed: our search and recommend paths against raw faiss on the same vectors, one run."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import faiss
import numpy as np
import pandas as pd
import torch
from torch import nn

from recsys.serving.index import IndexConfig
from recsys.serving.recommender import Recommender


@dataclass
class Measurement:
    """One row of the serving table: a search path on a catalog at a batch size (latencies for batch 1)."""

    catalog: str
    path: str
    batch: int
    queries_per_s: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    note: str = ""


def _latencies(call: Callable[[int], object], repeats: int) -> np.ndarray:
    call(0)  # warm-up
    times = np.empty(repeats)
    for i in range(repeats):
        started = time.perf_counter()
        call(i)
        times[i] = time.perf_counter() - started
    return times


def _single(catalog: str, path: str, call: Callable[[int], object], repeats: int, note: str = "") -> Measurement:
    times = _latencies(call, repeats)
    return Measurement(catalog, path, 1, 1.0 / times.mean(), 1e3 * np.percentile(times, 50),
                       1e3 * np.percentile(times, 99), note)


def _batched(catalog: str, path: str, call: Callable[[], object], batch: int, repeats: int, note: str = ""
             ) -> Measurement:
    times = _latencies(lambda _: call(), repeats)
    return Measurement(catalog, path, batch, batch / np.median(times), note=note)


def synthetic_catalog(real: Recommender, num_items: int, seed: int = 0) -> Recommender:
    """The real recommender with its catalog grown to ``num_items`` random unit vectors (the real
    items first, so users, reviews and explanations still work)."""
    bundle = real.bundle
    rng = np.random.default_rng(seed)
    extra = num_items - len(bundle.item_ids)
    vectors = rng.normal(size=(extra, bundle.item_vectors.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    item_vectors = torch.cat([bundle.item_vectors, torch.from_numpy(vectors)])
    ids = list(bundle.item_ids) + [f"synthetic-{i}" for i in range(extra)]
    items = pd.concat([bundle.items, pd.DataFrame({"item_id": ids[len(bundle.item_ids):], "snippet": "",
                                                   "train_count": 0})], ignore_index=True)
    net = copy.deepcopy(bundle.net)
    if net.item_bias is not None:
        bias = nn.Embedding(num_items, 1)
        nn.init.zeros_(bias.weight)
        bias.weight.data[: len(bundle.item_ids)] = net.item_bias.weight.data
        net.item_bias = bias
    text = rng.normal(size=(extra, net.item_text.shape[1])).astype(np.float32)
    net.item_text = torch.cat([bundle.net.item_text, torch.from_numpy(text)])
    grown = replace(bundle, item_ids=pd.Index(ids), items=items, item_vectors=item_vectors, net=net)
    return Recommender(grown, index=real.index.config, rerank_top=real.rerank_top, order=real.order)


def measure(recommender: Recommender, catalog: str, k: int = 10, batch: int = 1000, single: int = 300,
            repeats: int = 5, fused: Recommender | None = None) -> list[Measurement]:
    """Queries/s and latency of raw faiss (IndexFlatIP, top-k) and of our paths, on the same vectors;
    with ``fused`` (the same export ranked by cosine fused with EASE), its paths too."""
    users = list(recommender.bundle.user_ids)
    rng = np.random.default_rng(0)
    batch_users = [users[i] for i in rng.integers(0, len(users), batch)]
    positions = [recommender.user_position[u] for u in batch_users]
    queries = np.ascontiguousarray(recommender.bundle.user_vectors.numpy()[positions])
    raw = faiss.IndexFlatIP(queries.shape[1])
    raw.add(np.ascontiguousarray(recommender.bundle.item_vectors.numpy()))
    exact = recommender.search(batch_users, k)[1]
    fp16 = Recommender(recommender.bundle, index=IndexConfig("flat_fp16"), rerank_top=recommender.rerank_top)
    approx = fp16.search(batch_users, k)[1]
    recall = np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact, strict=True)])
    hybrid = Recommender(recommender.bundle, index=IndexConfig("hybrid"), rerank_top=recommender.rerank_top)
    fused_rows = [] if fused is None else [
        _single(catalog, "Recommender.recommend_user, fused with EASE (exact over the catalog)",
                lambda i: fused.recommend_user(batch_users[i % batch], k), single),
        _batched(catalog, "Recommender.search, fused with EASE", lambda: fused.search(batch_users, k), batch, repeats),
    ]
    return fused_rows + [
        _single(catalog, "raw faiss IndexFlatIP", lambda i: raw.search(queries[i % batch : i % batch + 1], k), single),
        _single(catalog, "Recommender.search (seen excluded)",
                lambda i: recommender.search([batch_users[i % batch]], k), single),
        _single(catalog, "Recommender.recommend_user (re-rank 100 + explanations)",
                lambda i: recommender.recommend_user(batch_users[i % batch], k), single),
        _single(catalog, "Recommender.recommend_user, hybrid index",
                lambda i: hybrid.recommend_user(batch_users[i % batch], k), single),
        _batched(catalog, "raw faiss IndexFlatIP", lambda: raw.search(queries, k), batch, repeats),
        _batched(catalog, "Recommender.search (seen excluded)", lambda: recommender.search(batch_users, k), batch,
                 repeats),
        _batched(catalog, "Recommender.search, flat_fp16 index", lambda: fp16.search(batch_users, k), batch, repeats,
                 note=f"recall@{k} vs exact {recall:.4f}"),
        _batched(catalog, "Recommender.recommend_users (re-rank 100 + explanations)",
                 lambda: recommender.recommend_users(batch_users, k), batch, max(1, repeats // 2)),
    ]


def render(rows: list[Measurement]) -> str:
    """A Markdown table, with each path's throughput as a ratio of raw faiss at the same batch size."""
    raw = {(r.catalog, r.batch): r.queries_per_s for r in rows if r.path.startswith("raw faiss")}
    lines = ["| catalog | path | batch | queries/s | vs raw faiss | p50 ms | p99 ms | note |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        ratio = r.queries_per_s / raw[(r.catalog, r.batch)]
        p50 = f"{r.p50_ms:.3f}" if r.p50_ms is not None else ""
        p99 = f"{r.p99_ms:.3f}" if r.p99_ms is not None else ""
        lines.append(f"| {r.catalog} | {r.path} | {r.batch} | {r.queries_per_s:,.0f} | {ratio:.2f}x | {p50} | {p99} "
                     f"| {r.note} |")
    return "\n".join(lines)
