"""Cold items: hold items out of training with all their reviews, add them to the trained model's
export by their documents alone (as scripts/add_items.py does), and rank them for the users who
reviewed them; against text baselines and chance. Needs a dataset with an item file.

    python scripts/benchmark_cold_items.py data=magazine
    python scripts/benchmark_cold_items.py data=magazine cold.folds=5 cold.out=reports/magazine/cold_items

Options: cold.folds (parts of the items, each held out once; default 5), cold.seed (the item
partition's seed; default 0), cold.out (the report; default outputs/benchmark_cold_items/<time>),
cold.work (each fold's data copy, run, exports; default
outputs/benchmark_cold_items/<time>/runs). Every other key=value is a
Hydra override of scripts/train.py.
"""

import json
import logging
import shlex
import sys

from recsys.benchmarking.options import check_overrides, driver_folders, integer_option, split_arguments
from recsys.cli import exit_on_user_error

USAGE = "python scripts/benchmark_cold_items.py"


@exit_on_user_error
def main(arguments: list[str]) -> None:
    if arguments and arguments[0] in ("-h", "--help"):
        print(__doc__)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    options, overrides = split_arguments(arguments, "cold", {"cold.folds": "5", "cold.seed": "0"},
                                         {"cold.out", "cold.work"}, USAGE)
    folds, seed = integer_option(options, "cold.folds"), integer_option(options, "cold.seed")
    out, work = driver_folders(options, "cold", "benchmark_cold_items")
    check_overrides(overrides, work)
    from recsys.benchmarking.cold_items import cold_items_report, run_cold_items

    records = run_cold_items(overrides, folds, seed, work)
    report = cold_items_report(records, f"{USAGE} " + " ".join(shlex.quote(a) for a in arguments))
    out.mkdir(parents=True, exist_ok=True)
    (out / "cold_items.md").write_text(report)
    (out / "cold_items.json").write_text(json.dumps(records, indent=2))
    print(report)


if __name__ == "__main__":
    main(sys.argv[1:])
