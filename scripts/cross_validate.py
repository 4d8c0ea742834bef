"""k-fold cross-validation of one model: train and test on every fold, write a mean ± std table.

    python scripts/cross_validate.py cv.folds=5
    python scripts/cross_validate.py cv.folds=5 model=ease data=magazine
    python scripts/cross_validate.py cv.folds=3 experiment=mi_full cv.out=reports/cv_mi

Options: cv.folds (default 5), cv.out (the tables; default outputs/cross_validate/<time>), cv.work
(the runs' checkpoints and logs; default outputs/cross_validate/<time>/runs), cv.parallel (folds
trained at once, each with its share of the CPU cores; default 1). Every other key=value is a
Hydra override of scripts/train.py.
"""

import logging
import shlex
import sys

from recsys.benchmarking.cross_validation import run_cross_validation, write_cv_report
from recsys.benchmarking.options import check_overrides, driver_folders, integer_option, split_arguments
from recsys.cli import exit_on_user_error


@exit_on_user_error
def main(arguments: list[str]) -> None:
    if arguments and arguments[0] in ("-h", "--help"):
        print(__doc__)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    options, overrides = split_arguments(arguments, "cv", {"cv.folds": "5", "cv.parallel": "1"},
                                         {"cv.out", "cv.work"}, "python scripts/cross_validate.py")
    folds, parallel = integer_option(options, "cv.folds"), integer_option(options, "cv.parallel")
    out, work = driver_folders(options, "cv", "cross_validate")
    check_overrides(overrides, work)
    records = run_cross_validation(overrides, folds, work, parallel)
    command = "python scripts/cross_validate.py " + " ".join(shlex.quote(a) for a in arguments)
    print(write_cv_report(records, out, command).read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
