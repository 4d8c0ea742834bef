"""The real server on loopback under 10,000 mixed valid/invalid requests from 8 concurrent clients."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from recsys.serving.load import LoadRequest, LoadResult, ServerProcess, request_mix, run_load

pytestmark = pytest.mark.slow

REQUESTS, CLIENTS, WARMUP = 10_000, 8, 500


def test_request_mix_is_seeded_and_covers_every_kind():
    mix = request_mix(["u1", "u2"], ["i1"], 3000, seed=1)
    assert mix == request_mix(["u1", "u2"], ["i1"], 3000, seed=1)
    kinds = Counter(r.kind for r in mix)
    assert len(kinds) == 22 and min(kinds.values()) > 20
    assert 0.25 < sum(not r.valid for r in mix) / len(mix) < 0.35


def test_the_reviews_ratings_are_on_the_exports_scale_and_the_invalid_one_off_it():
    mix = request_mix(["u1"], ["i1"], 3000, seed=1, rating_scale=(2.0, 10.0))
    ratings = {review["rating"] for r in mix if r.kind in ("reviews", "rating_off_scale")
               for review in json.loads(r.body)["reviews"]}
    valid = {review["rating"] for r in mix if r.kind == "reviews" for review in json.loads(r.body)["reviews"]}
    assert valid == {float(n) for n in range(2, 11)}  # 1 is off this scale, and 7 on it
    assert ratings - valid == {12.0}
    # On stars, the same draws as before the scale was a setting.
    stars = request_mix(["u1"], ["i1"], 3000, seed=1)
    assert {review["rating"] for r in stars if r.kind == "reviews" for review in json.loads(r.body)["reviews"]} == \
        {1.0, 2.0, 3.0, 4.0, 5.0}


def test_ten_thousand_requests_no_5xx_invalid_get_4xx_memory_flat(tiny_export, tmp_path):
    export, _, datamodule = tiny_export
    users = [str(u) for u in datamodule.data.user_ids]
    items = [str(i) for i in datamodule.data.item_ids]
    with ServerProcess(export, tmp_path / "server.log") as server:
        run_load(server.url, request_mix(users, items, WARMUP, seed=99), CLIENTS)
        before_mb = server.rss_mb()
        result = run_load(server.url, request_mix(users, items, REQUESTS, seed=0), CLIENTS, deadline_s=600)
        after_mb = server.rss_mb()
    summary = result.summary()
    print(summary, f"rss {before_mb:.0f} -> {after_mb:.0f} MB")
    assert summary["sent"] == REQUESTS, "the run hit its time bound"
    assert summary["server_errors"] == 0 and summary["no_answer"] == 0, result.failures()
    assert summary["invalid_not_4xx"] == 0 and summary["valid_not_200"] == 0, result.failures()
    assert after_mb <= 1.10 * before_mb, (before_mb, after_mb)


def test_load_accounting_counts_each_wrong_answer_once():
    requests = [LoadRequest(f"k{i}", "GET", f"/p{i}", None, valid) for i, valid in
                enumerate([True, True, False, False, False, True])]
    # 200 ok; 500 wrong; 422 ok; 200 wrong (invalid accepted); 503 wrong; never sent (deadline)
    statuses = np.array([200, 500, 422, 200, 503, 0])
    latencies = np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan])
    summary = LoadResult(requests, statuses, latencies, seconds=2.0).summary()
    assert summary["sent"] == 5 and summary["requests"] == 6 and summary["requests_per_s"] == 2.5
    assert (summary["server_errors"], summary["no_answer"]) == (2, 1)
    assert (summary["valid_not_200"], summary["invalid_not_4xx"]) == (2, 2)
    assert summary["p50_ms"] == 3.0
    assert LoadResult(requests, statuses, latencies, 2.0).failures() == [
        "k1 GET /p1 -> 500", "k3 GET /p3 -> 200", "k4 GET /p4 -> 503", "k5 GET /p5 -> 0"]
