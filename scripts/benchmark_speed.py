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

import logging
import os
from pathlib import Path

from recsys.cli import exit_on_user_error, script_parser

REPO = Path(__file__).resolve().parents[1]


@exit_on_user_error
def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--out", default="reports/speed_benchmark.md", help="where the table is written")
    parser.add_argument("--batches", type=int, default=2, help="timed batches per loop (the naive one is slow)")
    parser.add_argument("--skip-full-run", action="store_true", help="skip the peak-RSS training run")
    args = parser.parse_args()
    # Imported here, so that --help and a bad option answer before torch loads.
    from recsys.benchmarking.speed_report import speed_report

    logging.basicConfig(level=logging.WARNING)
    cache = Path(os.environ.get("RECSYS_CACHE_DIR", Path.home() / ".cache" / "recsys"))
    text = speed_report(REPO, os.environ.get("RECSYS_DATA_DIR"), cache, args.batches, full_run=not args.skip_full_run)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
