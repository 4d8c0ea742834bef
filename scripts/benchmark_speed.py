"""Speed against the limits of the machine, all figures from one run, as ratios.

    python scripts/benchmark_speed.py --out reports/speed_benchmark.md

1. Training samples/s of the real step vs a naive loop re-encoding every text at every step
   (same batches, batch size, weights and loss), for the default frozen encoder and for
   fine-tuning one layer.
2. Encoder sequences/s at 64 and 128 tokens, fp32 vs bf16, and achieved FLOP/s as a share of a
   measured bf16 matmul rate.
3. Peak RSS of a full Musical Instruments training run (`scripts/train.py experiment=mi_full`),
   measured first, while this process is small (ru_maxrss survives fork+exec).
"""

import argparse
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recsys.cli import exit_on_user_error
from recsys.data.sources import DatasetFiles

REPO = Path(__file__).resolve().parents[1]
MI = DatasetFiles("musical_instruments", "amazon2014-musical-instruments-5core",
                  "reviews_Musical_Instruments_5.json.gz")


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description="Speed benchmark")
    parser.add_argument("--out", default="reports/speed_benchmark.md")
    parser.add_argument("--batches", type=int, default=2, help="timed batches per loop (the naive one is slow)")
    parser.add_argument("--skip-full-run", action="store_true", help="skip the peak-RSS training run")
    args = parser.parse_args()
    # Imported here, so that --help and a bad option answer before torch loads.
    import torch

    from recsys.benchmarking.speed import encoder_speed, encoder_time_breakdown, matmul_flops_per_s, training_speed
    from recsys.data.datamodule import ReviewDataModule
    from recsys.data.splits import SplitSpec
    from recsys.models.text_encoder import TextEncoder
    from recsys.models.two_tower import TwoTowerModel
    from recsys.training.module import TwoTowerModule

    logging.basicConfig(level=logging.WARNING)
    cache = Path(os.environ.get("RECSYS_CACHE_DIR", Path.home() / ".cache" / "recsys"))
    lines = [f"Speed benchmark: {torch.get_num_threads()} threads", ""]

    # First, while this process is small: Linux keeps the peak RSS across fork+exec, so a child
    # started after the encoder is loaded here would report this process's peak, not its own.
    full_run: list[str] = []
    if not args.skip_full_run:
        cold = not any(cache.glob("**/embeddings-*.safetensors"))
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_dir:
            subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "experiment=mi_full", "logger=csv",
                            f"hydra.run.dir={run_dir}"], cwd=REPO, check=True, capture_output=True)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        full_run = [f"Full Musical Instruments run (`scripts/train.py experiment=mi_full`): peak RSS {peak:,.0f} MB, "
                    f"{(time.perf_counter() - started) / 60:.1f} min, "
                    f"{'cold caches (every text tokenized and encoded first)' if cold else 'warm caches'}.", ""]

    matmul_bf16, matmul_fp32 = matmul_flops_per_s(torch.bfloat16), matmul_flops_per_s(torch.float32)
    encoder = TextEncoder(trainable_layers=0)
    lines += ["| encoder (MiniLM-L6, batch 128) | sequences/s | GFLOP/s | share of bf16 matmul rate |",
              "|---|---:|---:|---:|"]
    speeds = {}
    for seq in (64, 128):
        for bf16 in (False, True):
            speed = encoder_speed(encoder, seq, bf16)
            speeds[(seq, speed.dtype)] = speed
            lines.append(f"| seq {seq}, {speed.dtype} | {speed.sequences_per_s:,.0f} | "
                         f"{speed.flops_per_s / 1e9:,.1f} | {speed.flops_per_s / matmul_bf16:.0%} |")
    lines += ["", f"Measured matmul 2048x2048: bf16 {matmul_bf16 / 1e9:,.0f} GFLOP/s, fp32 {matmul_fp32 / 1e9:,.0f} "
              f"GFLOP/s. bf16 vs fp32 encoder at seq 64: "
              f"{speeds[(64, 'bf16')].sequences_per_s / speeds[(64, 'fp32')].sequences_per_s:.2f}x.", ""]
    lines += ["| where the bf16 encoder's time goes (seq 64, profiled) | share |", "|---|---:|"]
    lines += [f"| {group} | {share:.0%} |" for group, share in encoder_time_breakdown(encoder, 64).items()]
    lines += [""]

    lines += ["| training step (batch 128, Musical Instruments) | ours samples/s | naive samples/s | speed-up | "
              "loss ours / naive (same batch) |", "|---|---:|---:|---:|---:|"]
    for layers, item_tokens in ((0, 256), (1, 128)):
        datamodule = ReviewDataModule(MI, data_dir=os.environ.get("RECSYS_DATA_DIR"), cache_dir=cache,
                                      split=SplitSpec(seed=0), batch_size=128, item_max_tokens=item_tokens)
        datamodule.prepare_data()
        datamodule.setup("fit")
        torch.manual_seed(0)
        net = TwoTowerModel(datamodule.num_items, text={"trainable_layers": layers}, embedding_cache_dir=cache /
                            "embeddings")
        module = TwoTowerModule(net, loss={"retrieval": "softmax"})
        module.attach(datamodule.catalog())
        result = training_speed(module, datamodule, args.batches)
        lines.append(f"| trainable_layers={layers}, item documents {item_tokens} tokens | "
                     f"{result['samples_per_s_ours']:,.1f} | {result['samples_per_s_naive']:,.2f} | "
                     f"{result['samples_per_s_ours'] / result['samples_per_s_naive']:,.1f}x | "
                     f"{result['loss_ours']:.4f} / {result['loss_naive']:.4f} |")

    text = "\n".join(lines + [""] + full_run)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
