import gzip
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.errors import DataFormatError
from recsys.data.readers import parse_item, parse_review, read_items, read_reviews
from recsys.data.validation import BAD_LINE_REASONS, BadLine
from tests.conftest import review, write_lines

GOOD = review("U1", "I1", 4.0, 100, "fine strings", "ok")

# One line of each bad kind, with the reason the reader must give.
BAD_LINES = {
    "invalid_json": '{"reviewerID": "U2", "asin": ',
    "not_an_object": "[1, 2, 3]",
    "missing_id": json.dumps({**GOOD, "reviewerID": "  "}),
    "missing_field": json.dumps({k: v for k, v in GOOD.items() if k != "overall"}),
    "wrong_type": json.dumps({**GOOD, "overall": "five"}),
    "rating_out_of_range": json.dumps({**GOOD, "overall": 6}),
    "non_utf8": b'{"reviewerID": "U3", "asin": "I1", "overall": 5, "reviewText": "caf\xe9"}',
}


def test_reads_2014_and_2018_reviews_into_typed_table(tmp_path: Path):
    path = write_lines(tmp_path / "r.json", [
        GOOD,
        # 2018 style: extra fields, no reviewText, vote as a string, reviewTime only.
        {"reviewerID": "U2", "asin": "I9", "overall": 2, "summary": "meh", "vote": "3",
         "verified": True, "reviewTime": "02 28, 2014"},
    ])
    result = read_reviews(path)
    table = result.table
    assert list(table.columns) == ["user_id", "item_id", "rating", "text", "summary", "timestamp"]
    assert table["rating"].tolist() == [4.0, 2.0]
    assert table["text"].tolist() == ["fine strings", ""]
    assert table["timestamp"].tolist() == [100, 1393545600]  # 2014-02-28 00:00 UTC
    assert str(table["rating"].dtype) == "float32"
    assert result.report.rows_kept == 2 and result.report.is_balanced()


@pytest.mark.parametrize("reason", sorted(BAD_LINES))
def test_each_bad_line_kind_raises_with_file_line_and_reason(tmp_path: Path, reason: str):
    path = write_lines(tmp_path / "reviews.json.gz", [GOOD, review("U5", "I5"), BAD_LINES[reason]])
    with pytest.raises(DataFormatError) as caught:
        read_reviews(path, on_bad_line="error")
    err = caught.value
    assert (err.path, err.line_number, err.reason) == (path, 3, reason)
    assert f"reviews.json.gz:3: {reason}" in str(err)
    assert "on_bad_line=skip" in str(err)


def test_skip_policy_counts_every_bad_line_by_reason(tmp_path: Path):
    lines = [GOOD, *BAD_LINES.values(), review("U7", "I7"), "", json.dumps({**GOOD, "overall": float("nan")})]
    path = write_lines(tmp_path / "reviews.json", lines)
    result = read_reviews(path, on_bad_line="skip")
    report = result.report
    expected = {reason: 1 for reason in BAD_LINES}
    expected["rating_out_of_range"] = 2  # 6 and NaN
    assert dict(report.skipped) == expected
    assert report.rows_kept == 2 and report.blank_lines == 1
    assert report.lines_read == len(lines) and report.is_balanced()
    assert report.examples["wrong_type"] == ["line 6: 'overall' should be a number, found 'five'"]


def test_truncated_gzip_is_reported_after_the_complete_lines(tmp_path: Path):
    rows = [review(f"U{i}", f"I{i}", text="x" * 200) for i in range(300)]
    full = write_lines(tmp_path / "full.json.gz", rows).read_bytes()
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataFormatError, match="truncated_file"):
        read_reviews(cut)
    result = read_reviews(cut, on_bad_line="skip")
    assert result.report.skipped["truncated_file"] == 1
    assert 0 < result.report.rows_kept < 300
    assert result.report.is_balanced()


def test_duplicate_pairs_keep_the_latest_review(tmp_path: Path):
    path = write_lines(tmp_path / "r.json", [
        review("U1", "I1", 1.0, t=300, text="latest"),
        review("U1", "I1", 5.0, t=100, text="oldest"),
        review("U2", "I1", 3.0, t=5, text="other user"),
        review("U1", "I1", 2.0, t=300, text="same day, later line"),
    ])
    result = read_reviews(path)
    assert result.report.duplicates_dropped == 2 and result.report.is_balanced()
    assert sorted(result.table["text"]) == ["other user", "same day, later line"]


def test_unknown_policy_lists_allowed_values(tmp_path: Path):
    path = write_lines(tmp_path / "r.json", [GOOD])
    with pytest.raises(ValueError, match="use one of: error, skip"):
        read_reviews(path, on_bad_line="ignore")


def test_items_drop_html_titles_deduplicate_and_read_2014_literals(tmp_path: Path):
    path = write_lines(tmp_path / "meta.json.gz", [
        {"asin": "M1", "title": '<span class="a-size-medium a-color-secondary"', "brand": "Hearst",
         "description": ["Cooking &amp; recipes.", "", "<b>Monthly</b>"],
         "category": ["Magazine Subscriptions", "Cooking, Food &amp; Wine"]},
        {"asin": "M1", "title": "a repeated row", "brand": "other"},
        # 2014 metadata: a Python literal with nested category lists.
        "{'asin': 'M2', 'title': 'Fender Strings', 'categories': [['Musical Instruments', 'Strings']]}",
    ])
    result = read_items(path)
    by_id = result.table.set_index("item_id")
    assert by_id.loc["M1", "title"] == ""
    assert by_id.loc["M1", "description"] == "Cooking & recipes. Monthly"
    assert by_id.loc["M1", "categories"] == "Magazine Subscriptions > Cooking, Food & Wine"
    assert by_id.loc["M1", "brand"] == "Hearst"
    assert by_id.loc["M2", "title"] == "Fender Strings"
    assert by_id.loc["M2", "categories"] == "Musical Instruments > Strings"
    assert result.report.duplicates_dropped == 1 and result.report.is_balanced()


def test_item_line_with_wrong_field_type_is_bad():
    with pytest.raises(BadLine) as caught:
        parse_item({"asin": "M1", "description": [1, 2]})
    assert caught.value.reason == "wrong_type"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
review_like = st.fixed_dictionaries(
    {},
    optional={
        "reviewerID": json_values, "asin": json_values, "overall": json_values,
        "reviewText": json_values, "summary": json_values, "unixReviewTime": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(obj=review_like)
def test_parser_either_returns_a_valid_row_or_a_known_reason(obj):
    try:
        user, item, rating, text, summary, timestamp = parse_review(json.loads(json.dumps(obj)))
    except BadLine as bad:
        assert bad.reason in BAD_LINE_REASONS
        return
    assert user and item and isinstance(text, str) and isinstance(summary, str)
    assert 1.0 <= rating <= 5.0 and not math.isnan(rating)
    assert isinstance(timestamp, int)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=64))
def test_reader_on_arbitrary_bytes_never_crashes(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("bytes") / "r.json"
    path.write_bytes(raw)
    report = read_reviews(path, on_bad_line="skip").report
    assert report.is_balanced()
    assert set(report.skipped) <= set(BAD_LINE_REASONS)


@settings(max_examples=40, deadline=None)
@given(kinds=st.lists(st.sampled_from(["good", "blank", *BAD_LINES]), max_size=25))
def test_no_line_is_lost_without_a_count(tmp_path_factory, kinds):
    lines = [review(f"U{i}", f"I{i}") if k == "good" else "" if k == "blank" else BAD_LINES[k]
             for i, k in enumerate(kinds)]
    path = write_lines(tmp_path_factory.mktemp("fuzz") / "r.json.gz", lines)
    report = read_reviews(path, on_bad_line="skip").report
    assert report.lines_read == len(kinds)
    assert report.is_balanced()
    assert report.rows_kept == kinds.count("good")


def test_gzip_header_is_not_required_for_plain_json(tmp_path: Path):
    path = tmp_path / "r.json"
    path.write_bytes(gzip.decompress(write_lines(tmp_path / "r.json.gz", [GOOD]).read_bytes()))
    assert read_reviews(path).report.rows_kept == 1
