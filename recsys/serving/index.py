"""Cosine top-K search over item vectors with faiss (inner product on unit vectors)."""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

INDEX_KINDS = ("flat", "ivf", "hnsw", "flat_fp16")


@dataclass
class IndexConfig:
    """``flat``: exact; ``flat_fp16``: exact scan over float16-compressed vectors (half the memory
    traffic); ``ivf``: ``nlist`` clusters, ``nprobe`` searched; ``hnsw``: graph with ``m`` links,
    ``ef_search`` candidates."""

    kind: str = "flat"
    nlist: int = 256
    nprobe: int = 16
    m: int = 32
    ef_search: int = 128

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"index={self.kind!r} is not allowed; use one of: {', '.join(INDEX_KINDS)}")


class ItemIndex:
    """Top-K items by inner product for batches of unit query vectors, with per-query exclusions."""

    def __init__(self, item_vectors: np.ndarray, config: IndexConfig | None = None, threads: int | None = None) -> None:
        self.config = config or IndexConfig()
        vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        self.num_items, dim = vectors.shape
        if threads:
            faiss.omp_set_num_threads(threads)
        kind = self.config.kind
        if kind == "flat":
            self.index = faiss.IndexFlatIP(dim)
        elif kind == "flat_fp16":
            self.index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        elif kind == "ivf":
            nlist = max(1, min(self.config.nlist, self.num_items // 39 or 1))
            self.index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self.index.train(vectors)
            self.index.nprobe = min(self.config.nprobe, nlist)
        else:
            self.index = faiss.IndexHNSWFlat(dim, self.config.m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efSearch = self.config.ef_search
        self.index.add(vectors)

    def search(self, queries: np.ndarray, k: int, exclude: list[np.ndarray] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, items)``, each [len(queries), k], best first, leaving out ``exclude[i]`` for
        query i. Rows with fewer than k results are padded with item -1 and score -inf."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, self.num_items)
        extra = max((len(e) for e in exclude), default=0) if exclude else 0
        scores, items = self.index.search(queries, min(k + extra, self.num_items))
        if not extra:
            return scores[:, :k], items[:, :k]
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_items = np.full((len(queries), k), -1, dtype=np.int64)
        for row, excluded in enumerate(exclude):
            keep = (items[row] >= 0) & ~np.isin(items[row], excluded)
            found = items[row][keep][:k]
            out_items[row, : len(found)] = found
            out_scores[row, : len(found)] = scores[row][keep][:k]
        return out_scores, out_items
