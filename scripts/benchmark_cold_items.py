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
import sys

from recsys.benchmarking.options import start_driver
from recsys.cli import exit_on_user_error


@exit_on_user_error
def main(arguments: list[str]) -> None:
    args = start_driver(arguments, __doc__, "benchmark_cold_items", "cold", {"cold.folds": 5, "cold.seed": 0})
    if args is None:
        return
    from recsys.benchmarking.cold_items import cold_items_report, run_cold_items

    records = run_cold_items(args.overrides, args.numbers["cold.folds"], args.numbers["cold.seed"], args.work,
                             args.group)
    report = cold_items_report(records, args.command)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cold_items.md").write_text(report)
    (args.out / "cold_items.json").write_text(json.dumps(records, indent=2))
    print(report)


if __name__ == "__main__":
    main(sys.argv[1:])
