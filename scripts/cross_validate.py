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
import time
from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from recsys.benchmarking.cross_validation import run_cross_validation, write_cv_report
from recsys.benchmarking.harness import compose_training
from recsys.cli import exit_on_user_error

CV_OPTIONS = {"cv.folds", "cv.out", "cv.work", "cv.parallel"}


def parse_arguments(arguments: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split ``key=value`` arguments into cv options and train overrides."""
    options, overrides = {"cv.folds": "5", "cv.parallel": "1"}, []
    for argument in arguments:
        key, sep, value = argument.partition("=")
        if not sep:
            raise ValueError(f"{argument!r} is not key=value (see: python scripts/cross_validate.py --help)")
        if key.startswith("cv."):
            if key not in CV_OPTIONS:
                raise ValueError(f"{key} is not a cross-validation option; use one of: {', '.join(sorted(CV_OPTIONS))}")
            options[key] = value
        else:
            overrides.append(argument)
    return options, overrides


def integer_option(options: dict[str, str], key: str) -> int:
    """The integer value of the cv option ``key``, or a ValueError that names it."""
    try:
        return int(options[key])
    except ValueError:
        raise ValueError(f"{key}={options[key]!r} is not an integer") from None


@exit_on_user_error
def main(arguments: list[str]) -> None:
    if arguments and arguments[0] in ("-h", "--help"):
        print(__doc__)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    options, overrides = parse_arguments(arguments)
    folds, parallel = integer_option(options, "cv.folds"), integer_option(options, "cv.parallel")
    run_dir = Path("outputs", "cross_validate", time.strftime("%Y-%m-%d_%H-%M-%S"))
    out = Path(options.get("cv.out") or run_dir)
    work = Path(options.get("cv.work") or run_dir / "runs")
    try:  # a bad override fails here, before any fold trains
        compose_training(overrides, work)
    except (HydraException, OmegaConfBaseException) as err:
        raise ValueError(f"bad override: {err}") from None
    records = run_cross_validation(overrides, folds, work, parallel)
    command = "python scripts/cross_validate.py " + " ".join(shlex.quote(a) for a in arguments)
    print(write_cv_report(records, out, command).read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
