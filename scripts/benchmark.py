"""Train and evaluate every model (popularity, bias, ease, zero_shot, mf, two_tower) on the same
data, random split (per seed) and temporal split; write reports/<data>/results.md and plots.

    python scripts/benchmark.py data=musical_instruments
    python scripts/benchmark.py data=musical_instruments --seeds 0 1 2
    python scripts/benchmark.py data=magazine --models popularity ease two_tower trainer.max_epochs=2
"""

import logging
import shlex
import sys
import tempfile
from pathlib import Path

from recsys.benchmarking.harness import MODELS, run_benchmark
from recsys.benchmarking.options import check_overrides
from recsys.benchmarking.report import write_report
from recsys.cli import exit_on_user_error, script_parser


@exit_on_user_error
def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides: data=<name> and any other key=value")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="split seeds, one run of each model per seed")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="the models compared")
    parser.add_argument("--out", default="reports", help="reports go to <out>/<data>/")
    parser.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    args, rest = parser.parse_known_args()
    unknown = [r for r in rest if r.startswith("-") or "=" not in r]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides += rest  # key=value overrides given after the options
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    data = next((o.split("=", 1)[1] for o in args.overrides if o.startswith("data=")), "musical_instruments")
    others = [o for o in args.overrides if not o.startswith("data=")]
    out = Path(args.out) / data
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="recsys-benchmark-"))
    check_overrides(args.overrides, work)  # a bad one fails here, not after the first models have run
    records = run_benchmark(data, args.seeds, args.models, out, work, others)
    command = "python scripts/benchmark.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    path = write_report(records, out, data, command)
    print(path.read_text())


if __name__ == "__main__":
    main()
