"""Serving text backends (fp32, bf16, int8, ONNX): encoder speed and the effect on test metrics."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from recsys.data.datamodule import ReviewDataModule
from recsys.models.text_encoder import encode_in_length_order
from recsys.serving.backend_names import ONNX_FILE, TEXT_BACKENDS
from recsys.serving.text_backends import TextBackend, build_text_backend, export_onnx
from recsys.training.module import TwoTowerModule

BATCH = 64  # texts per encoder call when re-encoding the catalog


@dataclass
class BackendResult:
    """Speed (sequences/s per sequence length) and test metrics with every text re-encoded."""

    backend: str
    sequences_per_s: dict[int, float]
    metrics: dict[str, float]
    max_abs_diff: float  # largest |embedding - fp32 embedding| over a probe batch


def backend_speed(backend: TextBackend, seq_len: int, batch: int = 32, repeats: int = 5) -> float:
    """Sequences/s of ``backend`` on [batch, seq_len] full-length token batches (after a warm-up)."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (batch, seq_len), generator=generator)
    mask = torch.ones(batch, seq_len, dtype=torch.long)
    backend(ids, mask)
    started = time.perf_counter()
    for _ in range(repeats):
        backend(ids, mask)
    return batch * repeats / (time.perf_counter() - started)


def evaluate_with_backend(module: TwoTowerModule, datamodule: ReviewDataModule, backend: TextBackend) -> dict:
    """Test metrics with the review and item texts re-encoded by ``backend`` (the item tower's
    frozen text too, for a fully frozen encoder), as serving new users and items would."""
    net = module.net
    catalog = datamodule.catalog()
    net.review_text = encode_in_length_order(backend, catalog.review_tokens, BATCH)
    net.item_text = encode_in_length_order(backend, catalog.item_tokens, BATCH)
    if net.encoder.fully_frozen:
        net.item_tower.frozen_text = net.item_text
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    return {k: float(v) for k, v in trainer.test(module, datamodule, verbose=False)[0].items()}


def compare_backends(module: TwoTowerModule, datamodule: ReviewDataModule, backends: Sequence[str] = TEXT_BACKENDS,
                     seq_lens: Sequence[int] = (64, 128)) -> list[BackendResult]:
    """Every backend's speed and test metrics (module with its catalog attached, eval mode)."""
    module.eval()
    encoder = module.net.encoder
    probe = datamodule.catalog().review_tokens
    probe_ids, probe_mask = probe.pad(np.arange(min(64, len(probe))))
    reference = build_text_backend("fp32", encoder)(probe_ids, probe_mask)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = Path(folder) / ONNX_FILE
        if "onnx" in backends:
            export_onnx(encoder, onnx_path)
        for kind in backends:
            backend = build_text_backend(kind, encoder, onnx_path)
            speed = {seq: backend_speed(backend, seq) for seq in seq_lens}
            difference = float((backend(probe_ids, probe_mask) - reference).abs().max())
            results.append(BackendResult(kind, speed, evaluate_with_backend(module, datamodule, backend), difference))
    return results


def backends_table(results: list[BackendResult], seq_lens: Sequence[int] = (64, 128)) -> str:
    """Markdown: speed and its ratio to fp32, recall@10 and RMSE and their change vs fp32."""
    base = next(r for r in results if r.backend == "fp32")
    head = ["backend", *[f"seq/s @{s}" for s in seq_lens], *[f"vs fp32 @{s}" for s in seq_lens],
            "test recall@10", "Δ recall@10", "test RMSE", "Δ RMSE", "max abs Δ embedding"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in results:
        cells = [f"{r.sequences_per_s[s]:,.0f}" for s in seq_lens]
        cells += [f"{r.sequences_per_s[s] / base.sequences_per_s[s]:.2f}x" for s in seq_lens]
        recall, rmse = r.metrics["test/recall@10"], r.metrics["test/rmse"]
        cells += [f"{recall:.4f}", f"{recall - base.metrics['test/recall@10']:+.4f}", f"{rmse:.4f}",
                  f"{rmse - base.metrics['test/rmse']:+.4f}", f"{r.max_abs_diff:.1e}"]
        lines.append(f"| {r.backend} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
