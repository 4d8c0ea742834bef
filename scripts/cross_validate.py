"""k-fold cross-validation of one model: train and test on every fold, write a mean ± std table.

    python scripts/cross_validate.py cv.folds=5
    python scripts/cross_validate.py cv.folds=5 model=ease data=magazine
    python scripts/cross_validate.py cv.folds=3 experiment=mi_full cv.out=reports/cv_mi

Options: cv.folds (default 5), cv.out (the tables; default outputs/cross_validate/<time>), cv.work
(the runs' checkpoints and logs; default outputs/cross_validate/<time>/runs), cv.parallel (folds
trained at once, each with its share of the CPU cores; default 1). Every other key=value is a
Hydra override of scripts/train.py.
"""

import sys

from recsys.benchmarking.cross_validation import run_cross_validation, write_cv_report
from recsys.benchmarking.options import start_driver
from recsys.cli import exit_on_user_error


@exit_on_user_error
def main(arguments: list[str]) -> None:
    args = start_driver(arguments, __doc__, "cross_validate", "cv", {"cv.folds": 5, "cv.parallel": 1})
    if args is None:
        return
    records = run_cross_validation(args.overrides, args.numbers["cv.folds"], args.work, args.numbers["cv.parallel"],
                                   args.group)
    print(write_cv_report(records, args.out, args.command).read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
