import dataclasses
import os
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from recsys.serving.http import MAX_K, RecommendBody, RecommendedItem, create_app
from recsys.serving.load import free_port
from recsys.serving.recommender import Recommendation, Recommender
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def client(tiny_export) -> TestClient:
    return TestClient(create_app(Recommender.from_export(tiny_export[0])))


def test_health_and_items(client, tiny_export):
    health = client.get("/health").json()
    assert health == {"status": "ok", "items": 10, "users": 12, "format_version": 1, "ease_fusion": 0.0,
                      "rating_scale": [1.0, 5.0]}
    item = str(tiny_export[2].data.item_ids[0])
    body = client.get(f"/items/{item}").json()
    assert body["item_id"] == item and body["train_count"] > 0 and body["snippet"]
    items = [str(i) for i in tiny_export[2].data.item_ids]
    missing = client.get("/items/nope")
    assert missing.status_code == 404
    assert missing.json()["detail"] == \
        f"unknown item 'nope' (this export holds 10 items, e.g. {items[0]!r} and {items[1]!r})"
    typed = client.get(f"/items/{item.swapcase()}")  # ids are matched exactly, and the near one named
    assert typed.status_code == 404
    assert typed.json()["detail"] == \
        f"unknown item {item.swapcase()!r} (did you mean {item!r}? ids are matched exactly)"
    assert "/recommend" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_the_openapi_docs_describe_every_field_and_error(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    ours = ["ReviewBody", "RecommendBody", "RecommendedItem", "RecommendResponse", "HealthResponse", "CatalogItem",
            "ErrorResponse"]
    for name in ours:
        assert schemas[name].get("description"), name
        undescribed = [field for field, entry in schemas[name]["properties"].items() if not entry.get("description")]
        assert undescribed == [], name
    paths = spec["paths"]

    def schema_of(path: str, method: str, status: str) -> str:
        return paths[path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]

    assert schema_of("/health", "get", "200").endswith("/HealthResponse")
    assert schema_of("/items/{item_id}", "get", "200").endswith("/CatalogItem")
    assert schema_of("/items/{item_id}", "get", "404").endswith("/ErrorResponse")
    assert schema_of("/recommend", "post", "200").endswith("/RecommendResponse")
    assert schema_of("/recommend", "post", "404").endswith("/ErrorResponse")
    assert "422" in paths["/recommend"]["post"]["responses"]
    for path, method in (("/health", "get"), ("/items/{item_id}", "get"), ("/recommend", "post")):
        assert paths[path][method].get("description"), path


def test_the_documented_examples_are_valid_requests_and_the_response_mirrors_the_recommendation():
    examples = RecommendBody.model_json_schema()["examples"]
    assert {next(key for key in ("user_id", "reviews", "query") if key in example) for example in examples} == {
        "user_id", "reviews", "query"}
    for example in examples:
        RecommendBody.model_validate(example)
    assert list(RecommendedItem.model_fields) == [field.name for field in dataclasses.fields(Recommendation)]


def test_recommend_three_ways(client, tiny_export):
    data = tiny_export[2].data
    user = str(data.user_ids[0])
    by_user = client.post("/recommend", json={"user_id": user, "k": 3})
    assert by_user.status_code == 200
    items = by_user.json()["items"]
    assert [i["rank"] for i in items] == [1, 2, 3]
    assert set(items[0]) == {"rank", "item_id", "score", "cosine", "predicted_rating", "like_probability",
                             "explanation", "snippet"}
    reviews = [{"text": "great strings", "item_id": str(data.item_ids[2]), "rating": 4}]
    assert len(client.post("/recommend", json={"reviews": reviews, "k": 2}).json()["items"]) == 2
    assert len(client.post("/recommend", json={"query": "bright tone", "k": 4}).json()["items"]) == 4


def test_unknown_user_is_404_and_names_no_other_user(client, tiny_export):
    users = [str(u) for u in tiny_export[2].data.user_ids]
    for asked in ("nobody", users[0].swapcase()):
        response = client.post("/recommend", json={"user_id": asked})
        assert response.status_code == 404
        assert response.json()["detail"] == (f"unknown user {asked!r}; ask for a new user with their reviews "
                                             "instead (\"reviews\" in this body)")
    # The command line's message (the operator's) names them; a client must not learn them.
    assert users[0] in str(Recommender.from_export(tiny_export[0]).unknown_user(users[0].swapcase()))


def test_an_item_id_with_a_slash_is_looked_up_whole(client):
    # It was routed nowhere: Starlette's bare "Not Found", not the catalog's answer.
    response = client.get("/items/strings/10-46")
    assert response.status_code == 404 and response.json()["detail"].startswith("unknown item 'strings/10-46' (")


def test_an_id_sent_as_a_json_whole_number_is_read_as_its_text(client):
    # A catalog of numeric ids (a CSV's item 1143 is the id "1143") answered {"item_id": 1143} with
    # 422 "Input should be a valid string"; the ids of the tiny export are text, so these are unknown.
    response = client.post("/recommend", json={"user_id": 7})
    assert response.status_code == 404 and response.json()["detail"].startswith("unknown user '7'")
    response = client.post("/recommend", json={"reviews": [{"text": "great", "item_id": 1143, "rating": 5}]})
    assert response.status_code == 422 and response.json()["detail"] == "unknown item ids: 1143"
    for wrong in (True, 7.5, [7]):  # not whole numbers: still refused as not text
        response = client.post("/recommend", json={"user_id": wrong})
        assert response.status_code == 422 and response.json()["detail"][0]["type"] == "string_type"


def test_a_review_of_an_unknown_item_is_422_naming_it(client):
    response = client.post("/recommend", json={"reviews": [{"text": "great", "item_id": "X1", "rating": 5}]})
    assert response.status_code == 422 and response.json()["detail"] == "unknown item ids: X1"


@pytest.mark.parametrize(("body", "detail"), [
    ({"query": "   "}, "a query is empty; give some text"),
    ({"reviews": [{"text": "fine"}, {"text": " \n "}]}, "a review's text is empty; give its text"),
])
def test_a_blank_text_is_422_saying_so(client, body, detail):
    response = client.post("/recommend", json=body)
    assert response.status_code == 422 and response.json()["detail"] == detail


@pytest.mark.parametrize("body", [
    {},
    {"user_id": "U0", "query": "both"},
    {"query": "x", "k": 0},
    {"query": "x", "k": MAX_K + 1},
    {"query": "x" * 1001},
    {"reviews": []},
    {"reviews": [{"text": "x"}] * 51},
    {"reviews": [{"text": "x", "rating": 6}]},
    {"reviews": [{"text": "x", "rating": 0.5}]},
    {"reviews": [{"text": "x", "rating": "many"}]},
    {"reviews": [{"text": "y" * 5001}]},
    {"query": "x", "unexpected": 1},
    {"reviews": [{"text": "x", "item_id": "not-an-item"}]},
])
def test_invalid_bodies_are_422(client, body):
    assert client.post("/recommend", json=body).status_code == 422


@pytest.mark.parametrize("body", [b'{"reviews": [{"text": "x", "rating": NaN}]}', b'{"query": "x", "k": Infinity}'])
def test_a_number_that_json_cannot_hold_is_422(client, body):
    # Python's JSON reader takes NaN and Infinity; FastAPI's own 422 answer then failed to echo them (a 500).
    response = client.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["input"] in ("nan", "inf")


def test_malformed_json_is_422(client):
    response = client.post("/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_real_server_on_loopback(tiny_export):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "scripts" / "serve.py"), f"export={tiny_export[0]}", f"port={port}"],
        cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("server did not start")
        user = str(tiny_export[2].data.user_ids[1])
        response = httpx.post(f"{url}/recommend", json={"user_id": user, "k": 5}, timeout=10)
        assert response.status_code == 200 and len(response.json()["items"]) == 5
        assert httpx.post(f"{url}/recommend", json={"k": 5}, timeout=10).status_code == 422
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_fused_export_answers_with_its_fused_ranking(fused_export):
    out, _, datamodule = fused_export
    recommender = Recommender.from_export(out)
    fused_client = TestClient(create_app(recommender))
    assert fused_client.get("/health").json()["ease_fusion"] == 0.7
    user = str(datamodule.data.user_ids[0])
    body = fused_client.post("/recommend", json={"user_id": user, "k": 5}).json()
    _, expected = recommender.search([user], k=5)
    assert [r["item_id"] for r in body["items"]] == [recommender.item_id_list[i] for i in expected[0]]


@pytest.mark.parametrize(("host", "warned"), [
    ("127.0.0.1", False), ("localhost", False), ("::1", False), ("127.0.0.2", False),
    ("0.0.0.0", True), ("::", True), ("192.168.1.5", True), ("recsys.example.org", True),
])
def test_a_server_bound_beyond_loopback_is_warned_of(host, warned):
    from recsys.serving.cli import exposure_warning

    warning = exposure_warning(host)
    assert (warning is not None) == warned
    if warned:
        assert warning.startswith(f"host={host}: this server answers anyone who can reach it, without authentication")
