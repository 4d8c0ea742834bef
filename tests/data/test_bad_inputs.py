"""The bad-input corpus (built by ``make_bad_inputs.py``): every kind of damage is an error naming the
file and line, or a counted skip; no row is ever lost without a count."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.data.errors import DataFormatError, EmptyDatasetError
from recsys.data.loading import load_tables
from recsys.data.readers import read_items, read_reviews
from recsys.data.sources import LocatedFiles
from tests.data.make_bad_inputs import CORPUS_DIR, GOOD, BadInputCase, build

CASES = {case.name: case for case in build()}


def test_corpus_covers_every_kind_of_damage_the_issue_lists():
    assert set(CASES) >= {
        "truncated_gzip", "invalid_json", "wrong_field_types", "rating_zero", "rating_six", "rating_nan",
        "rating_string", "empty_text", "whitespace_text", "non_utf8", "ten_megabyte_line", "duplicate_pairs",
        "empty_file",
    }
    assert (CORPUS_DIR / "unknown_meta_ids" / "meta.json").is_file()
    assert CASES["ten_megabyte_line"].path().stat().st_size < 100_000  # gzip keeps the 10 MB line small


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.reason))
def test_error_policy_names_file_line_and_reason(name: str):
    case: BadInputCase = CASES[name]
    with pytest.raises(DataFormatError) as caught:
        read_reviews(case.path(), on_bad_line="error")
    err = caught.value
    assert (err.path, err.line_number, err.reason) == (case.path(), case.line, case.reason)
    assert f"{case.filename}:{case.line}: {case.reason}" in str(err)


@pytest.mark.parametrize("name", sorted(CASES))
def test_skip_policy_counts_every_line(name: str):
    case: BadInputCase = CASES[name]
    report = read_reviews(case.path(), on_bad_line="skip").report
    assert dict(report.skipped) == ({case.reason: case.skipped} if case.reason else {})
    assert (report.rows_kept, report.duplicates_dropped) == (case.kept, case.duplicates)
    assert report.is_balanced()
    if case.reason:
        assert report.examples[case.reason][0].startswith(f"line {case.line}:")


def test_readable_cases_are_the_same_under_both_policies():
    for case in CASES.values():
        if case.reason is None:
            strict = read_reviews(case.path(), on_bad_line="error")
            assert strict.report.rows_kept == case.kept and strict.report.duplicates_dropped == case.duplicates


def test_duplicate_pairs_keep_the_latest_review():
    table = read_reviews(CASES["duplicate_pairs"].path()).table
    latest = table[(table["user_id"] == "A") & (table["item_id"] == "X")]
    assert latest["rating"].tolist() == [1.0] and latest["timestamp"].tolist() == [1_500_000_000]


def test_skip_warning_names_each_distinct_problem_once(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    reviews = tmp_path / "reviews.json"
    good = {"reviewerID": "A", "asin": "X", "overall": 5.0, "unixReviewTime": 1_500_000_000}
    rows = [{**good, "reviewText": "fine"}, {**good, "reviewText": ""}, {**good, "reviewText": " "},
            {**good, "overall": 9.0, "reviewText": "odd"}, {**good, "reviewText": "\t"}]
    reviews.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = read_reviews(reviews, on_bad_line="skip").report
    caplog.set_level("WARNING", logger="recsys.data.validation")
    report.log_summary()
    empty = next(r.getMessage() for r in caplog.records if "neither text nor summary" in r.getMessage())
    assert "skipped 3 lines" in empty and "e.g. lines 2, 3, 5: " in empty
    assert empty.count("missing, empty or whitespace") == 1


def test_ten_megabyte_line_is_refused_without_reading_it_whole():
    case = CASES["ten_megabyte_line"]
    # With a limit above the line's size it parses: the line itself is valid JSON.
    assert read_reviews(case.path(), max_line_bytes=11 * 1024 * 1024).report.rows_kept == case.kept + 1
    assert read_reviews(case.path(), on_bad_line="skip").table["user_id"].tolist() == ["A", "B", "C"]


def _located(reviews: Path, meta: Path | None = None) -> LocatedFiles:
    return LocatedFiles(name="corpus", reviews=reviews, meta=meta)


@pytest.mark.parametrize("name", ["empty_file", "empty_file_gzip"])
def test_empty_file_is_a_clear_dataset_error(name: str, tmp_path: Path):
    with pytest.raises(EmptyDatasetError, match="no usable reviews .*0 lines read"):
        load_tables(_located(CASES[name].path()), "error", tmp_path)


def test_a_file_with_only_bad_lines_is_an_empty_dataset_under_skip(tmp_path: Path):
    only_bad = tmp_path / "only_bad.json"
    only_bad.write_bytes(b"not json\n[1]\n")
    with pytest.raises(EmptyDatasetError, match="2 lines read, 2 skipped"):
        load_tables(_located(only_bad), "skip", tmp_path / "cache")


def test_unknown_ids_in_metadata_are_counted_and_not_used(tmp_path: Path):
    folder = CORPUS_DIR / "unknown_meta_ids"
    tables = load_tables(_located(folder / "reviews.json", folder / "meta.json"), "error", tmp_path)
    meta_report = tables.reports[1]
    assert meta_report.rows_unused == 2 and meta_report.rows_kept == 3 and meta_report.is_balanced()
    assert tables.items["item_id"].tolist() == ["X"]
    again = load_tables(_located(folder / "reviews.json", folder / "meta.json"), "error", tmp_path)
    assert again.reports[1].rows_unused == 2  # the count survives the parsed-table cache
    assert read_items(folder / "meta.json").report.rows_kept == 3


corpus_line = st.sampled_from([
    line for case in CASES.values() if case.reason and case.name not in ("truncated_gzip", "ten_megabyte_line")
    for line in case.path().read_bytes().splitlines(keepends=True)
])
any_line = st.one_of(corpus_line, st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ") + b"\n"),
                     st.just(b"\n"), st.just(b"   \n"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(any_line, max_size=30), compress=st.booleans(), cut=st.floats(0.0, 1.0))
def test_fuzzed_files_never_lose_a_row_without_a_count(tmp_path: Path, lines, compress, cut):
    payload = b"".join(GOOD + lines)
    path = tmp_path / ("fuzz.json.gz" if compress else "fuzz.json")
    data = gzip.compress(payload, mtime=0) if compress else payload
    if compress and cut < 0.3:  # sometimes truncate the gzip stream too
        data = data[: max(10, int(len(data) * (0.5 + cut)))]
    path.write_bytes(data)
    report = read_reviews(path, on_bad_line="skip").report
    assert report.is_balanced(), json.dumps(report.to_dict())
    assert report.rows_kept >= (2 if not compress or cut >= 0.3 else 0)
