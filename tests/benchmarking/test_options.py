"""The benchmark drivers' options (recsys.benchmarking.options)."""

import os
from pathlib import Path

import pytest

from recsys.benchmarking.options import driver_folders, integer_option, split_arguments, start_driver

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


def test_runs_never_go_to_the_report_folder_unasked(monkeypatch, tmp_path):
    monkeypatch.delenv("RECSYS_OUTPUT_DIR")
    out, work = driver_folders({"x.out": "reports/mine"}, "x", "some_driver")
    assert out == Path("reports/mine")
    assert work.parts[:2] == ("outputs", "some_driver") and work.name == "runs"
    out, work = driver_folders({}, "x", "some_driver")
    assert work.parent == out and out.parts[:2] == ("outputs", "some_driver")
    assert driver_folders({"x.work": "/tmp/w"}, "x", "d")[1] == Path("/tmp/w")
    monkeypatch.setenv("RECSYS_OUTPUT_DIR", str(tmp_path))  # as paths.output_dir reads it
    out, work = driver_folders({}, "x", "some_driver")
    assert out.parent == tmp_path / "some_driver" and work == out / "runs"


def test_a_driver_parses_numbers_folders_and_the_command(tmp_path, capsys):
    assert start_driver(["--help"], "the help", "cross_validate", "cv", {}) is None
    assert capsys.readouterr().out == "the help\n"
    args = start_driver(["cv.folds=3", "model=ease", f"cv.out={tmp_path}/my report"], "", "cross_validate", "cv",
                        {"cv.folds": 5, "cv.parallel": 1})
    assert args.numbers == {"cv.folds": 3, "cv.parallel": 1}
    assert args.overrides == ["model=ease"]
    outputs = Path(os.environ["RECSYS_OUTPUT_DIR"])  # conftest's, outside the repository
    assert args.out == tmp_path / "my report" and args.work.parent.parent == outputs / "cross_validate"
    assert args.command == f"python scripts/cross_validate.py cv.folds=3 model=ease 'cv.out={tmp_path}/my report'"
    assert args.group == "cross_validate/my report"  # the W&B group of its runs, named by the report folder
    with pytest.raises(ValueError, match="bad override"):
        start_driver(["model=no_such_model"], "", "cross_validate", "cv", {"cv.folds": 5})
    # One Hydra's grammar cannot read is answered as the Hydra scripts answer it (recsys.cli).
    with pytest.raises(ValueError, match=r"^Cannot read the override 'paths.data_dir=/d/é' \('é' at character 19\)"
                                         r".* wants quotes: paths.data_dir='/d/é'"):
        start_driver(["paths.data_dir=/d/é"], "", "cross_validate", "cv", {"cv.folds": 5})
    with pytest.raises(ValueError, match="cv.seed is not an option of python scripts/cross_validate.py"):
        start_driver(["cv.seed=1"], "", "cross_validate", "cv", {"cv.folds": 5})
