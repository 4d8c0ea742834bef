"""A dataset of one's own: CSV / TSV / Parquet files and field names other than Amazon's."""

from __future__ import annotations

import dataclasses
import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.errors import DataFormatError, DatasetNotFoundError
from recsys.data.fields import ItemFields, ReviewFields
from recsys.data.loading import load_tables, tables_cache_dir
from recsys.data.readers import read_items, read_reviews
from recsys.data.records import file_format
from recsys.data.sources import DatasetFiles, locate
from recsys.data.splits import SplitSpec
from recsys.data.validation import BAD_LINE_REASONS, BadLinePolicy
from tests.conftest import MAGAZINE, REPO_ROOT, tiny_reviews, write_lines
from tests.data.test_datamodule import make_datamodule

SHOP_FIELDS = ReviewFields(user="customer", item="product", rating="stars", text="body", summary="headline",
                           timestamp=None, date="written", date_format="iso")
AMAZON_TO_SHOP = {"reviewerID": "customer", "asin": "product", "overall": "stars", "reviewText": "body",
                  "summary": "headline"}


def shop_table(rows: list[dict]) -> pd.DataFrame:
    """Amazon-style review objects as a shop's table: other column names, ISO dates."""
    table = pd.DataFrame(rows).rename(columns=AMAZON_TO_SHOP)
    table["written"] = [datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
                        for t in table.pop("unixReviewTime")]
    return table


def test_csv_tsv_and_parquet_with_own_field_names_read_as_the_json_original(tmp_path: Path):
    rows = tiny_reviews()
    rows[3]["reviewText"] = 'a text with a comma, a "quote"\nand a second line'
    original = read_reviews(write_lines(tmp_path / "reviews.json", rows)).table
    table = shop_table(rows)
    table.to_csv(tmp_path / "reviews.csv.gz", index=False)
    table.to_csv(tmp_path / "reviews.tsv", index=False, sep="\t")
    table.to_parquet(tmp_path / "reviews.parquet", index=False)
    for name in ("reviews.csv.gz", "reviews.tsv", "reviews.parquet"):
        result = read_reviews(tmp_path / name, fields=SHOP_FIELDS)
        pd.testing.assert_frame_equal(result.table, original, obj=name)
        assert result.report.rows_kept == len(original) and result.report.is_balanced()
    assert original["text"].str.endswith('a "quote"\nand a second line').sum() == 1


def test_numbers_stored_as_text_in_json_and_parquet_read_as_numbers(tmp_path: Path):
    rows = tiny_reviews()
    original = read_reviews(write_lines(tmp_path / "reviews.json", rows)).table
    as_text = [{**row, "overall": f"{row['overall']:.1f}", "unixReviewTime": str(row["unixReviewTime"])}
               for row in rows]
    as_json = read_reviews(write_lines(tmp_path / "text.json", as_text)).table
    pd.testing.assert_frame_equal(as_json, original)
    pd.DataFrame(as_text).to_parquet(tmp_path / "text.parquet", index=False)
    pd.testing.assert_frame_equal(read_reviews(tmp_path / "text.parquet").table, original)
    # Text that is no number is still refused, with the line.
    as_text[2]["overall"] = "five"
    with pytest.raises(DataFormatError) as caught:
        read_reviews(write_lines(tmp_path / "bad.json", as_text))
    assert caught.value.line_number == 3 and "'overall' should be a number, found 'five'" in str(caught.value)


def test_bad_csv_rows_are_reported_with_the_line_they_start_on(tmp_path: Path):
    path = tmp_path / "reviews.csv"
    path.write_bytes(
        b"\xef\xbb\xbfuser_id,item_id,rating,text,timestamp\n"  # line 1: header, after a byte-order mark
        b'U1,I1,5,"two\nlines",100\n'                     # lines 2-3: good
        b"U2,I2,five,fine,100\n"                         # line 4: rating is text
        b"U3,I3,4,too,many,fields\n"                     # line 5
        b'U4,I4,4,"stray "quote,100\n'                   # line 6
        b"U5,I5,4,caf\xe9,100\n"                         # line 7: not UTF-8
        b"\n"                                            # line 8: blank
        b"U6,I6,3,,100\n"                                # line 9: no text
        b"7,8,2.0,numeric ids,200\n"                     # line 10: good, ids read as text
    )
    fields = ReviewFields(user="user_id", item="item_id", rating="rating", text="text", summary=None,
                          timestamp="timestamp", date=None)
    with pytest.raises(DataFormatError) as caught:
        read_reviews(path, fields=fields)
    assert (caught.value.line_number, caught.value.reason) == (4, "wrong_type")
    assert "'rating' should be a number, found 'five'" in str(caught.value)
    result = read_reviews(path, on_bad_line="skip", fields=fields)
    report = result.report
    assert dict(report.skipped) == {"wrong_type": 1, "wrong_field_count": 1, "invalid_csv": 1, "non_utf8": 1,
                                    "empty_text": 1}
    lines = {reason: int(found[0].split(":")[0].removeprefix("line ")) for reason, found in report.examples.items()}
    assert lines == {"wrong_type": 4, "wrong_field_count": 5, "invalid_csv": 6, "non_utf8": 7, "empty_text": 9}
    assert report.blank_lines == 1 and report.is_balanced()
    assert result.table[["user_id", "item_id", "rating", "text"]].values.tolist() == [
        ["U1", "I1", 5.0, "two\nlines"], ["7", "8", 2.0, "numeric ids"]]


def test_real_magazine_as_csv_and_parquet_with_own_names_gives_the_same_tables(real_data_dir, tmp_path):
    amazon = locate(MAGAZINE, real_data_dir)
    expected = load_tables(amazon, "error", tmp_path / "cache_json")
    with gzip.open(amazon.reviews, "rt", encoding="utf-8") as handle:
        reviews = shop_table([json.loads(line) for line in handle])
    reviews.to_csv(tmp_path / "reviews.csv", index=False)
    with gzip.open(amazon.meta, "rt", encoding="utf-8") as handle:
        meta = pd.DataFrame([json.loads(line) for line in handle])
    meta = meta.rename(columns={"asin": "sku", "category": "path"})[["sku", "title", "description", "path", "brand"]]
    meta.to_parquet(tmp_path / "items.parquet", index=False)

    files = DatasetFiles(name="shop", subdir="", reviews=str(tmp_path / "reviews.csv"),
                         meta=str(tmp_path / "items.parquet"), review_fields=SHOP_FIELDS,
                         item_fields=ItemFields(item="sku", categories="path"))
    loaded = load_tables(locate(files, "/nonexistent"), "error", tmp_path / "cache_own")
    pd.testing.assert_frame_equal(loaded.interactions, expected.interactions)
    pd.testing.assert_frame_equal(loaded.items, expected.items)
    assert len(loaded.interactions) == 2302 and (loaded.items["categories"] != "").sum() > 100


def test_custom_config_trains_on_a_csv_with_the_json_originals_split(tmp_path: Path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    rows = tiny_reviews()
    write_lines(tmp_path / "data" / "tiny" / "reviews.json", rows)
    table = pd.DataFrame(rows).rename(columns={"reviewerID": "user_id", "asin": "item_id", "overall": "rating",
                                               "reviewText": "text", "unixReviewTime": "timestamp"})
    table.drop(columns="summary").to_csv(tmp_path / "data" / "mine.csv", index=False)
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base=None):
        cfg = compose("train", overrides=["data=custom", "data.dataset.reviews=mine.csv",
                                          f"paths.data_dir={tmp_path / 'data'}"])
    files = instantiate(cfg.data.dataset)
    assert files.review_fields.summary is None and files.item_fields.categories == ("categories",)
    own = make_datamodule(files, tmp_path / "data", tmp_path / "cache")
    amazon = make_datamodule(DatasetFiles(name="tiny", subdir="tiny", reviews="reviews.json"),
                             tmp_path / "data", tmp_path / "cache")
    for name in ("train", "val", "test"):
        assert own.data.pairs[name].user.tolist() == amazon.data.pairs[name].user.tolist()
        assert own.data.pairs[name].item.tolist() == amazon.data.pairs[name].item.tolist()
    # The CSV has no summaries, so item documents hold review texts only.
    assert "headline" in " ".join(amazon.data.item_documents["document"])
    assert "headline" not in " ".join(own.data.item_documents["document"])
    assert all("writes review" in document for document in own.data.item_documents["document"])


def test_missing_own_file_says_which_setting_to_change(tmp_path: Path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base=None):
        cfg = compose("train", overrides=["data=custom", "data.dataset.reviews=absent.csv"])
    with pytest.raises(DatasetNotFoundError) as caught:
        locate(instantiate(cfg.data.dataset), tmp_path)
    message = str(caught.value)
    assert "absent.csv (missing)" in message and "data.dataset.reviews" in message and "McAuley" not in message
    # Of two files, the message says which one is missing.
    (tmp_path / "items.csv").write_text("item_id,title\nI1,Strings\n")
    with pytest.raises(DatasetNotFoundError) as caught:
        locate(DatasetFiles(name="shop", subdir="", reviews=str(tmp_path / "reviews.csv"),
                            meta=str(tmp_path / "items.csv")), tmp_path)
    assert f"  - {tmp_path / 'reviews.csv'} (missing)\n  - {tmp_path / 'items.csv'} (found)\n" in str(caught.value)
    # Absolute paths: the data folder plays no part, and the message does not send the user to it.
    assert "Looked in" not in str(caught.value) and "RECSYS_DATA_DIR" not in str(caught.value)


def test_field_mapping_is_part_of_the_cache_key(tmp_path: Path):
    path = write_lines(tmp_path / "d" / "r.json", tiny_reviews())
    plain = DatasetFiles(name="t", subdir="d", reviews="r.json")
    swapped = DatasetFiles(name="t", subdir="d", reviews="r.json",
                           review_fields=ReviewFields(text="summary", summary="reviewText"))
    first = load_tables(locate(plain, tmp_path), "error", tmp_path / "cache")
    second = load_tables(locate(swapped, tmp_path), "error", tmp_path / "cache")
    assert first.cache_dir != second.cache_dir
    assert second.interactions["text"].tolist() == first.interactions["summary"].tolist()
    assert tables_cache_dir(locate(plain, tmp_path), BadLinePolicy.ERROR, tmp_path / "cache") == first.cache_dir
    assert path.exists()


def test_data_without_times_splits_at_random_and_refuses_the_temporal_split(tmp_path: Path):
    rows = [{k: v for k, v in row.items() if k != "unixReviewTime"} for row in tiny_reviews()]
    write_lines(tmp_path / "data" / "t" / "r.json", rows)
    files = DatasetFiles(name="t", subdir="t", reviews="r.json",
                         review_fields=ReviewFields(timestamp=None, date=None))
    dm = make_datamodule(files, tmp_path / "data", tmp_path / "cache")
    assert dm.num_items == 8
    with pytest.raises(ValueError, match="needs review times"):
        make_datamodule(files, tmp_path / "data", tmp_path / "cache2", split=SplitSpec(strategy="temporal"))
    # With the default mapping the same file is refused line by line: it has no time field.
    with pytest.raises(DataFormatError, match="neither 'unixReviewTime' nor 'reviewTime'"):
        read_reviews(tmp_path / "data" / "t" / "r.json")


def test_settings_errors_name_the_config_key(tmp_path: Path):
    with pytest.raises(ValueError, match="review_fields: set text"):
        ReviewFields(text=None, summary=None)
    with pytest.raises(ValueError, match="review_fields.user"):
        ReviewFields(user="")
    with pytest.raises(ValueError, match=r"unknown data file type; recsys reads .*\.csv"):
        file_format(tmp_path / "reviews.xlsx")
    assert file_format(Path("a.JSONL.gz")) == "jsonl" and file_format(Path("b.tsv")) == "tsv"
    with pytest.raises(ValueError, match="unknown data file type"):
        file_format(Path("c.parquet.gz"))


def test_item_file_as_csv_with_one_category_column(tmp_path: Path):
    path = tmp_path / "items.csv"
    pd.DataFrame({"id": [1, 2], "name": ["Strings", "<b>Amp</b> &amp; cab"], "kind": ["Guitar", ""],
                  "about": ["Bright.", "Loud."]}).to_csv(path, index=False)
    table = read_items(path, fields=ItemFields(item="id", title="name", description="about",
                                               categories="kind", brand=None)).table
    assert table.values.tolist() == [["1", "Strings", "Bright.", "Guitar", ""],
                                     ["2", "Amp & cab", "Loud.", "", ""]]


def test_a_mapping_that_misses_the_file_names_the_fields_the_file_has(tmp_path: Path):
    path = tmp_path / "reviews.csv"
    path.write_text("customer,product,stars,body,timestamp\nC1,P1,5,great,100\n")
    with pytest.raises(DataFormatError) as caught:
        read_reviews(path, fields=ReviewFields(user="user_id", item="product", rating="stars", text="body"))
    assert caught.value.line_number == 2 and caught.value.reason == "missing_id"
    assert "'user_id' is missing (the record's fields: body, customer, product, stars, timestamp); if the file " \
        "names it otherwise, set data.dataset.review_fields.user=<its name>" in str(caught.value)


@pytest.mark.parametrize(("mapping", "setting"), [
    ({"rating": "overall"}, "data.dataset.review_fields.rating=<its name>"),
    ({"timestamp": "time"}, "data.dataset.review_fields.timestamp=<its name>"),
    ({"timestamp": "time", "date": "day"},
     "data.dataset.review_fields.timestamp=<its name> or data.dataset.review_fields.date=<its name>"),
])
def test_a_missing_field_names_the_setting_that_maps_it(tmp_path: Path, mapping: dict, setting: str):
    path = tmp_path / "reviews.csv"
    path.write_text("customer,product,stars,body,timestamp\nC1,P1,5,great,100\n")
    fields = {"user": "customer", "item": "product", "rating": "stars", "text": "body", "timestamp": "timestamp",
              "date": None, **mapping}
    with pytest.raises(DataFormatError) as caught:
        read_reviews(path, fields=ReviewFields(**fields))
    assert caught.value.reason == "missing_field"
    assert str(caught.value).splitlines()[0].endswith(f"; if the file names it otherwise, set {setting}")


def test_every_mapped_field_a_record_lacks_is_named_in_one_message(tmp_path: Path):
    # The file's names all differ from the defaults of data=custom: it took a run per field to learn them.
    path = tmp_path / "reviews.csv"
    path.write_text("reviewer,asin,overall,reviewText,summary,unixReviewTime\nC1,P1,5,great,Nice,100\n")
    with pytest.raises(DataFormatError) as caught:
        read_reviews(path, fields=ReviewFields(user="user_id", item="item_id", rating="rating", text="text",
                                               summary=None, timestamp="timestamp", date=None))
    assert str(caught.value).splitlines()[0].endswith(
        "; if the file names it otherwise, set data.dataset.review_fields.user=<its name>. It lacks these mapped "
        "fields too: 'item_id' (data.dataset.review_fields.item); 'rating' (data.dataset.review_fields.rating); "
        "'text' (data.dataset.review_fields.text); 'timestamp' (data.dataset.review_fields.timestamp)")
    # A pair of which one serves (the text or the summary, the timestamp or the date) is named as a pair.
    with pytest.raises(DataFormatError) as caught:
        read_reviews(path, fields=ReviewFields(user="reviewer", item="asin", rating="stars", text="body",
                                               summary="title", timestamp="time", date="day"))
    assert str(caught.value).splitlines()[0].endswith(
        "set data.dataset.review_fields.rating=<its name>. It lacks these mapped fields too: 'body' or 'title' "
        "(data.dataset.review_fields.text or data.dataset.review_fields.summary); 'time' or 'day' "
        "(data.dataset.review_fields.timestamp or data.dataset.review_fields.date)")


def test_an_empty_text_without_a_summary_mapping_says_how_to_map_one(tmp_path: Path):
    path = tmp_path / "reviews.csv"
    path.write_text("reviewer,asin,overall,reviewText,summary,unixReviewTime\nC1,P1,5,,Nice,100\n")
    fields = ReviewFields(user="reviewer", item="asin", rating="overall", text="reviewText", summary=None,
                          timestamp="unixReviewTime", date=None)
    with pytest.raises(DataFormatError) as caught:
        read_reviews(path, fields=fields)
    assert caught.value.reason == "empty_text"
    assert "'reviewText' is missing, empty or whitespace; if the file has a second text (a review title), map it " \
        "with data.dataset.review_fields.summary=<its name>: it is read where the text is empty" in str(caught.value)
    mapped = read_reviews(path, fields=dataclasses.replace(fields, summary="summary")).table
    assert mapped["summary"].tolist() == ["Nice"]


def test_a_missing_item_id_in_the_item_file_names_the_item_mapping(tmp_path: Path):
    path = tmp_path / "items.csv"
    path.write_text("sku,name\n1,Strings\n")
    with pytest.raises(DataFormatError) as caught:
        read_items(path, fields=ItemFields(item="id", title="name"))
    assert "set data.dataset.item_fields.item=<its name>" in str(caught.value)


def test_a_mistyped_text_field_names_the_file_fields_at_the_first_line_that_needs_it(tmp_path: Path):
    # The summary carries the first row, so only the second row shows that 'bodyy' is not the text.
    path = tmp_path / "reviews.csv"
    path.write_text("customer,product,stars,body,headline,timestamp\nC1,P1,5,great,Nice,100\nC2,P1,4,good,,101\n")
    with pytest.raises(DataFormatError) as caught:
        read_reviews(path, fields=dataclasses.replace(SHOP_FIELDS, text="bodyy", timestamp="timestamp"))
    assert caught.value.line_number == 3 and caught.value.reason == "empty_text"
    assert "(the record's fields: body, customer, product, stars, timestamp); if the file names it otherwise, " \
        "set data.dataset.review_fields.text=<its name> or data.dataset.review_fields.summary=<its name>" \
        in str(caught.value)


def test_a_mapped_field_that_no_record_holds_is_reported_and_warned_of(tmp_path: Path, caplog):
    rows = tiny_reviews()
    table = shop_table(rows)
    table.loc[0, "headline"] = ""
    table.to_parquet(tmp_path / "reviews.parquet", index=False)
    # Under 'skip' the row without a summary is counted; every other row silently lost its text.
    typo = dataclasses.replace(SHOP_FIELDS, text="bodyy")
    read = read_reviews(tmp_path / "reviews.parquet", on_bad_line="skip", fields=typo)
    assert read.report.skipped == {"empty_text": 1} and read.report.is_balanced()
    assert (read.table["text"] == "").all()
    assert read.report.absent_fields == {"data.dataset.review_fields.text": (
        "'bodyy' (did you mean 'body'? the file's fields: body, customer, headline, product, stars, written)")}
    assert read_reviews(tmp_path / "reviews.parquet", fields=SHOP_FIELDS).report.absent_fields == {}

    items = tmp_path / "items.csv"
    pd.DataFrame({"sku": ["P1", "P2"], "name": ["Strings", "Amp"], "kind": ["Guitar", ""]}).to_csv(items, index=False)
    # 'description' is in no record (no such column); 'kind' is one of the category names and is held.
    fields = ItemFields(item="sku", title="nmae", description="description", categories=("category", "kind"),
                        brand=None)
    report = read_items(items, fields=fields).report
    assert report.absent_fields == {
        "data.dataset.item_fields.title": "'nmae' (did you mean 'name'? the file's fields: kind, name, sku)",
        "data.dataset.item_fields.description": "'description' (the file's fields: kind, name, sku)",
    }
    # The warning is given again when the parsed tables come from the cache.
    write_lines(tmp_path / "reviews.json", rows)
    files = locate(DatasetFiles(name="shop", subdir="", reviews=str(tmp_path / "reviews.json"), meta=str(items),
                                item_fields=fields), tmp_path)
    for cached in (False, True):
        caplog.clear()
        with caplog.at_level("INFO", logger="recsys.data"):
            load_tables(files, "error", tmp_path / "cache")
        assert any(r.getMessage().startswith("Read parsed tables from") for r in caplog.records) == cached
        warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
        assert warnings == [
            "items.csv: data.dataset.item_fields.title names 'nmae' (did you mean 'name'? the file's fields: kind, "
            "name, sku), a field that no record has a value for, so every row's title reads as empty; set it to "
            "the field that holds it, or to null if the file has none",
            "items.csv: data.dataset.item_fields.description names 'description' (the file's fields: kind, name, "
            "sku), a field that no record has a value for, so every row's description reads as empty; set it to "
            "the field that holds it, or to null if the file has none",
        ]


def test_custom_config_without_a_reviews_file_says_what_to_set():
    from hydra import compose, initialize_config_dir
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base=None):
        cfg = compose("train", overrides=["data=custom"])
    # Not the Musical Instruments file that data=custom starts from.
    with pytest.raises(InstantiationException, match=r"data.dataset.reviews is not set for dataset 'custom'"):
        instantiate(cfg.data.dataset)


def test_ratings_on_another_scale_are_mapped_onto_stars(tmp_path: Path):
    path = tmp_path / "reviews.csv"
    path.write_text("u,i,score,text\nA,X,0,bad\nB,X,10,great\nC,X,5,fine\nD,X,7.5,good\nE,X,11,too high\n")
    fields = ReviewFields(user="u", item="i", rating="score", text="text", summary=None, timestamp=None, date=None,
                          rating_min=0, rating_max=10)
    result = read_reviews(path, on_bad_line="skip", fields=fields)
    assert result.table["rating"].tolist() == [1.0, 5.0, 3.0, 4.0]
    assert result.report.examples["rating_out_of_range"] == ["line 6: 'score' is 11, expected 0..10"]
    with pytest.raises(ValueError, match="rating_min must be below rating_max"):
        ReviewFields(rating_min=5, rating_max=5)


def test_a_json_array_file_is_read_like_json_lines(tmp_path: Path):
    rows = tiny_reviews()
    lines = read_reviews(write_lines(tmp_path / "lines.json", rows)).table
    (tmp_path / "pretty.json").write_text(json.dumps(rows, indent=2))
    (tmp_path / "one_line.json.gz").write_bytes(gzip.compress(json.dumps(rows).encode()))
    for name in ("pretty.json", "one_line.json.gz"):
        pd.testing.assert_frame_equal(read_reviews(tmp_path / name).table, lines, obj=name)
    (tmp_path / "mixed.json").write_text(json.dumps([rows[0], [1, 2], rows[1]]))
    report = read_reviews(tmp_path / "mixed.json", on_bad_line="skip").report
    assert report.rows_kept == 2 and report.examples["not_an_object"] == [
        "line 2: element 2 of the file's array is a JSON list"]
    # JSON lines whose first line happens to be an array stay JSON lines: one bad line, not a bad file.
    write_lines(tmp_path / "first_bad.json", ["[1, 2, 3]", *rows[:3]])
    report = read_reviews(tmp_path / "first_bad.json", on_bad_line="skip").report
    assert (report.lines_read, report.rows_kept, dict(report.skipped)) == (4, 3, {"not_an_object": 1})


CSV_FIELDS = ReviewFields(user="u", item="i", rating="r", text="t", summary=None, timestamp="ts", date=None)


@settings(max_examples=150, deadline=None)
@given(body=st.lists(st.text(alphabet=st.sampled_from(list('ab1,"\n\r\t\\ é')), max_size=20), max_size=8),
       raw_tail=st.binary(max_size=16))
def test_csv_reader_on_arbitrary_rows_never_crashes_and_loses_nothing(tmp_path_factory, body, raw_tail):
    path = tmp_path_factory.mktemp("csv") / "r.csv"
    path.write_bytes(("u,i,r,t,ts\n" + "\n".join(body)).encode() + raw_tail)
    report = read_reviews(path, on_bad_line="skip", fields=CSV_FIELDS).report
    assert report.is_balanced()
    assert set(report.skipped) <= set(BAD_LINE_REASONS)
