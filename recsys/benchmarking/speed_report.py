"""The speed benchmark's report (``scripts/benchmark_speed.py``): encoder throughput and FLOP
utilisation, where the encoder's time goes, training samples/s against a naive loop, and the peak
memory of a full Musical Instruments run; all figures from one run, compared as ratios."""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from recsys.benchmarking.harness import configured_dataset
from recsys.benchmarking.speed import (
    EncoderSpeed,
    encoder_speed,
    encoder_time_breakdown,
    matmul_flops_per_s,
    training_speed,
)
from recsys.data.datamodule import ReviewDataModule
from recsys.data.splits import SplitSpec
from recsys.models.text_encoder import TextEncoder
from recsys.models.two_tower import TwoTowerModel
from recsys.training.module import TwoTowerModule

# (trainable layers, item document tokens) of the training-step rows: the frozen default, and
# fine-tuning one layer over shorter documents.
TRAINING_SETTINGS = ((0, 256), (1, 128))


def full_run_lines(repo: Path, cache: Path) -> list[str]:
    """Peak RSS and minutes of ``scripts/train.py experiment=mi_full`` in a child process. Call it
    before this process grows: Linux keeps the peak RSS across fork+exec, so a child started after
    the encoder is loaded here would report this process's peak, not its own."""
    cold = not any(cache.glob("**/embeddings-*.safetensors"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        subprocess.run([sys.executable, str(repo / "scripts" / "train.py"), "experiment=mi_full", "logger=csv",
                        f"hydra.run.dir={run_dir}"], cwd=repo, check=True, capture_output=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    caches = "cold caches (every text tokenized and encoded first)" if cold else "warm caches"
    return [f"Full Musical Instruments run (`scripts/train.py experiment=mi_full`): peak RSS {peak:,.0f} MB, "
            f"{(time.perf_counter() - started) / 60:.1f} min, {caches}.", ""]


def encoder_lines(encoder: TextEncoder, name: str, seq_lens: tuple[int, ...] = (64, 128), batch: int = 128,
                  matmul_size: int = 2048) -> list[str]:
    """Sequences/s and achieved FLOP/s of ``encoder`` (called ``name``) in fp32 and bf16 at each of
    ``seq_lens``, against a measured bf16 matmul rate, and where its bf16 time goes at the first length."""
    matmul_bf16 = matmul_flops_per_s(torch.bfloat16, size=matmul_size)
    matmul_fp32 = matmul_flops_per_s(torch.float32, size=matmul_size)
    lines = [f"| encoder ({name}, batch {batch}) | sequences/s | GFLOP/s | share of bf16 matmul rate |",
             "|---|---:|---:|---:|"]
    speeds: dict[tuple[int, str], EncoderSpeed] = {}
    for seq in seq_lens:
        for bf16 in (False, True):
            speed = encoder_speed(encoder, seq, bf16, batch=batch)
            speeds[(seq, speed.dtype)] = speed
            lines.append(f"| seq {seq}, {speed.dtype} | {speed.sequences_per_s:,.0f} | "
                         f"{speed.flops_per_s / 1e9:,.1f} | {speed.flops_per_s / matmul_bf16:.0%} |")
    first = seq_lens[0]
    ratio = speeds[(first, "bf16")].sequences_per_s / speeds[(first, "fp32")].sequences_per_s
    lines += ["", f"Measured matmul {matmul_size}x{matmul_size}: bf16 {matmul_bf16 / 1e9:,.0f} GFLOP/s, fp32 "
              f"{matmul_fp32 / 1e9:,.0f} GFLOP/s. bf16 vs fp32 encoder at seq {first}: {ratio:.2f}x.", ""]
    lines += [f"| where the bf16 encoder's time goes (seq {first}, profiled) | share |", "|---|---:|"]
    lines += [f"| {group} | {share:.0%} |" for group, share in encoder_time_breakdown(encoder, first, batch).items()]
    return lines + [""]


def training_lines(data_dir: str | Path | None, cache: Path, batches: int) -> list[str]:
    """Training samples/s of the real step against a naive loop that re-encodes every text at every
    step (same batches, weights and loss), on Musical Instruments, for each of :data:`TRAINING_SETTINGS`."""
    lines = ["| training step (batch 128, Musical Instruments) | ours samples/s | naive samples/s | speed-up | "
             "loss ours / naive (same batch) |", "|---|---:|---:|---:|---:|"]
    dataset = configured_dataset("musical_instruments")
    for layers, item_tokens in TRAINING_SETTINGS:
        datamodule = ReviewDataModule(dataset, data_dir=data_dir, cache_dir=cache, split=SplitSpec(seed=0),
                                      batch_size=128, item_max_tokens=item_tokens)
        datamodule.prepare_data()
        datamodule.setup("fit")
        torch.manual_seed(0)
        net = TwoTowerModel(datamodule.num_items, text={"trainable_layers": layers},
                            embedding_cache_dir=cache / "embeddings")
        module = TwoTowerModule(net, loss={"retrieval": "softmax"})
        module.attach(datamodule.catalog())
        result = training_speed(module, datamodule, batches)
        lines.append(f"| trainable_layers={layers}, item documents {item_tokens} tokens | "
                     f"{result['samples_per_s_ours']:,.1f} | {result['samples_per_s_naive']:,.2f} | "
                     f"{result['samples_per_s_ours'] / result['samples_per_s_naive']:,.1f}x | "
                     f"{result['loss_ours']:.4f} / {result['loss_naive']:.4f} |")
    return lines


def speed_report(repo: Path, data_dir: str | Path | None, cache: Path, batches: int = 2,
                 full_run: bool = True) -> str:
    """The whole report as markdown: the full run first (see :func:`full_run_lines`; skipped
    without ``full_run``), then the bundled MiniLM's encoder tables and the training-step table
    (``batches`` timed batches per loop)."""
    full = full_run_lines(repo, cache) if full_run else []
    lines = [f"Speed benchmark: {torch.get_num_threads()} threads", ""]
    lines += encoder_lines(TextEncoder(trainable_layers=0), "MiniLM-L6")
    lines += training_lines(data_dir, cache, batches)
    return "\n".join(lines + [""] + full)
