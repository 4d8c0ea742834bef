"""The benchmark drivers' options (recsys.benchmarking.options)."""

from pathlib import Path

import pytest

from recsys.benchmarking.options import driver_folders, integer_option, split_arguments

USAGE = "python scripts/some_driver.py"


def test_options_are_split_from_train_overrides_with_their_defaults():
    options, overrides = split_arguments(["x.folds=3", "model=ease", "x.out=r", "data.max_reviews=5"], "x",
                                         {"x.folds": "5", "x.seed": "0"}, {"x.out"}, USAGE)
    assert options == {"x.folds": "3", "x.seed": "0", "x.out": "r"}
    assert overrides == ["model=ease", "data.max_reviews=5"]
    assert integer_option(options, "x.folds") == 3
    with pytest.raises(ValueError, match=r"x.fold is not an option of python scripts/some_driver.py; use one of: "
                                         r"x.folds, x.out, x.seed"):
        split_arguments(["x.fold=3"], "x", {"x.folds": "5", "x.seed": "0"}, {"x.out"}, USAGE)
    with pytest.raises(ValueError, match="'folds' is not key=value"):
        split_arguments(["folds"], "x", {}, set(), USAGE)
    with pytest.raises(ValueError, match="x.folds='three' is not an integer"):
        integer_option({"x.folds": "three"}, "x.folds")


def test_runs_never_go_to_the_report_folder_unasked():
    out, work = driver_folders({"x.out": "reports/mine"}, "x", "some_driver")
    assert out == Path("reports/mine")
    assert work.parts[:2] == ("outputs", "some_driver") and work.name == "runs"
    out, work = driver_folders({}, "x", "some_driver")
    assert work.parent == out and out.parts[:2] == ("outputs", "some_driver")
    assert driver_folders({"x.work": "/tmp/w"}, "x", "d")[1] == Path("/tmp/w")
