import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from recsys.serving.errors import InvalidRequestError, UnknownItemError, UnknownUserError
from recsys.serving.recommender import QUERY_TEXT_WEIGHT, Recommender, ReviewInput, as_id
from tests.conftest import REPO_ROOT, config_settings, wrong_kind_refusals


@pytest.fixture(scope="module")
def recommender(tiny_export) -> Recommender:
    return Recommender.from_export(tiny_export[0])


def test_known_user_excludes_seen_items_and_explains(recommender, tiny_export):
    _, _, datamodule = tiny_export
    data = datamodule.data
    user = str(data.user_ids[0])
    seen = {str(data.item_ids[i]) for i in data.train_items.items_of(0)}
    answer = recommender.recommend_user(user, k=5)
    assert len(answer) == min(5, data.num_items - len(seen))
    assert not {a.item_id for a in answer} & seen
    assert [a.rank for a in answer] == list(range(1, len(answer) + 1))
    assert all(a.cosine >= b.cosine for a, b in zip(answer, answer[1:], strict=False))
    # A plain export ranks known users by the cosine itself: the score is the cosine.
    assert [a.score for a in answer] == [a.cosine for a in answer]
    for a in answer:
        assert 1.0 <= a.predicted_rating <= 5.0 and 0.0 <= a.like_probability <= 1.0
        assert a.explanation.startswith(f"predicted {a.predicted_rating:.1f} stars; similar to your review of ")
    with_seen = recommender.recommend_user(user, k=data.num_items, exclude_seen=False)
    assert {a.item_id for a in with_seen} == set(data.item_ids.astype(str))


def test_explanation_names_the_most_similar_past_review(recommender, tiny_export):
    _, _, datamodule = tiny_export
    user = str(datamodule.data.user_ids[3])
    asker = recommender._known(user)
    item = 2
    target = recommender.net.item_text[item].numpy()
    scores = [float(r @ target / np.linalg.norm(r) / np.linalg.norm(target)) for r in asker.review_vectors.numpy()]
    assert asker.review_label(int(np.argmax(scores))) in recommender.explain(asker, [item], [4.0])[0]


def test_new_user_reviews_and_queries(recommender, tiny_export):
    _, _, datamodule = tiny_export
    item = str(datamodule.data.item_ids[1])
    answer = recommender.recommend_reviews([ReviewInput("user 9 writes review about item 1", item, 5.0),
                                            ReviewInput("a second review with no item")], k=4)
    assert len(answer) == 4 and item not in {a.item_id for a in answer}
    assert any("your review of" in a.explanation or "your review \"" in a.explanation for a in answer)
    query = recommender.recommend_query("headline about item 3", k=3)
    assert len(query) == 3 and "your query" in query[0].explanation
    # Without its text similarity, the query path equals a one-review history without an item.
    towers_only = Recommender(recommender.bundle, query_text_weight=0.0).recommend_query("headline about item 3", k=3)
    as_review = recommender.recommend_reviews([ReviewInput("headline about item 3")], k=3, exclude_seen=False)
    assert [a.item_id for a in towers_only] == [a.item_id for a in as_review]


def test_a_query_blends_the_towers_cosine_with_its_text_similarity_to_each_document(recommender, tiny_export):
    _, _, datamodule = tiny_export
    data = datamodule.data
    assert recommender.query_text_weight == QUERY_TEXT_WEIGHT > 0
    # Led by the text: a query that is an item's document (tokenized alike: cosine 1) finds that item first.
    text_led = Recommender(recommender.bundle, query_text_weight=1000.0)
    item_vectors = recommender.bundle.item_vectors
    for item, document in enumerate(data.item_documents["document"]):
        first = text_led.recommend_query(document, k=1)[0]
        assert first.item_id == str(data.item_ids[item])
        # The reported cosine stays the towers' cosine, not the blended score.
        vector = text_led._new([ReviewInput(document)], query=True).vector
        assert first.cosine == pytest.approx(float(item_vectors[item] @ vector), abs=1e-5)
    # The batched path (scripts/benchmark_queries.py) scores as recommend_query ranks.
    texts = ["headline about item 3", "a magazine about cooking"]
    vectors, embeddings = recommender.encode_queries(texts)
    for row, text in enumerate(texts):
        asker = recommender._new([ReviewInput(text)], query=True)
        assert torch.allclose(vectors[row], asker.vector, atol=1e-5)
        values, top = recommender.query_scores(vectors[row : row + 1], embeddings[row : row + 1])[0].topk(4)
        answer = recommender.recommend_query(text, k=4)
        assert [str(data.item_ids[int(i)]) for i in top] == [a.item_id for a in answer]
        # Each answer's score is the blended score it was ranked by (not the cosine it also reports).
        assert [a.score for a in answer] == pytest.approx(values.tolist(), abs=1e-4)
    with pytest.raises(ValueError, match="query_text_weight=-1"):
        Recommender(recommender.bundle, query_text_weight=-1.0)


def test_hybrid_index_serves_single_queries_like_exact(recommender, tiny_export):
    from recsys.serving.index import IndexConfig

    users = [str(u) for u in tiny_export[2].data.user_ids]
    hybrid = Recommender(recommender.bundle, index=IndexConfig("hybrid"))
    for user in users:
        assert [a.item_id for a in hybrid.recommend_user(user, k=3)] == \
            [a.item_id for a in recommender.recommend_user(user, k=3)]


@pytest.mark.parametrize("order", ["like", "rating"])
def test_a_head_order_ranks_and_scores_by_the_head(recommender, tiny_export, order):
    user = str(tiny_export[2].data.user_ids[2])
    answer = Recommender(recommender.bundle, order=order).recommend_user(user, k=4)
    head = [a.like_probability if order == "like" else a.predicted_rating for a in answer]
    assert [a.score for a in answer] == pytest.approx(head, abs=1e-4)
    assert all(a.score >= b.score for a, b in zip(answer, answer[1:], strict=False))


def test_unknown_ids_are_clear_errors(recommender):
    with pytest.raises(UnknownUserError) as unknown_user:
        recommender.recommend_user("nobody")
    # The message as written, not KeyError's repr of it in quotes.
    users = [str(u) for u in recommender.bundle.user_ids]
    assert str(unknown_user.value) == (
        f"unknown user 'nobody' (this export holds {len(users)} users, e.g. {users[0]!r} and {users[1]!r}); "
        "ask for a new user with their reviews instead (\"reviews\" in POST /recommend, or "
        "Recommender.recommend_reviews)")
    with pytest.raises(UnknownUserError, match="unknown user 'nobody' \\(this export holds"):
        recommender.search(["nobody"])
    # An id that differs from a known one in case or surrounding spaces is named, not matched.
    for typed in (users[2].swapcase(), f" {users[2]}\n"):
        with pytest.raises(UnknownUserError, match=rf"^unknown user {re.escape(repr(typed))} \(did you mean "
                                                   rf"{re.escape(repr(users[2]))}\? ids are matched exactly\); "):
            recommender.recommend_user(typed)
    with pytest.raises(UnknownItemError, match="unknown item ids: X1"):
        recommender.recommend_reviews([ReviewInput("text", "X1")])
    with pytest.raises(UnknownItemError, match="unknown item 'X1'"):
        recommender.item("X1")
    with pytest.raises(ValueError, match="order="):
        Recommender(recommender.bundle, order="random")


def test_batched_search_equals_the_full_path(recommender, tiny_export):
    users = [str(u) for u in tiny_export[2].data.user_ids]
    cosines, items = recommender.search(users, k=4)
    full = recommender.recommend_users(users, k=4)
    for row, answer in enumerate(full):
        assert [str(recommender.bundle.item_ids[i]) for i in items[row]] == [a.item_id for a in answer]
        assert cosines[row].tolist() == pytest.approx([a.cosine for a in answer], abs=1e-5)


def test_the_recommend_script_writes_json_equal_to_the_recommender_answer(recommender, tiny_export, tmp_path):
    user = str(tiny_export[2].data.user_ids[3])
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "recommend.py"), f"export={tiny_export[0]}", f"user={user}",
         "k=3", "output=json", f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, cwd=REPO_ROOT,
        timeout=300)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)  # stdout holds the one object and nothing else
    expected = [r.to_dict() for r in recommender.recommend_user(user, k=3)]
    assert [a["item_id"] for a in answer["items"]] == [e["item_id"] for e in expected]
    assert [a["score"] for a in answer["items"]] == pytest.approx([e["score"] for e in expected], abs=1e-5)
    assert answer["items"][0].keys() == expected[0].keys()
    # Escaped to ASCII, so that no terminal or pipe encoding can fail on it; the text is unchanged,
    # though Hydra's grammar refuses it unquoted (recsys.cli.text_overrides quotes it).
    text = "café, crème (don't)"
    query = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "recommend.py"), f"export={tiny_export[0]}", f"query={text}",
         "k=1", "output=json", f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, cwd=REPO_ROOT,
        timeout=300)
    assert query.returncode == 0, query.stderr
    assert query.stdout.isascii() and f'your query "{text}"' in json.loads(query.stdout)["items"][0]["explanation"]


def test_serving_does_not_import_lightning():
    # The Recommender ranks fused exports with recsys.training.ranking's z-scores; importing them
    # from recsys.training.teacher (which reaches the DataModule) made serving load Lightning
    # (import 10.3 s against 6.5 s).
    probe = "import sys, recsys.serving.http; print('pytorch_lightning' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_recommend_script_answers_an_unknown_user_with_its_message(tiny_export, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "recommend.py"), f"export={tiny_export[0]}", "user=nobody",
         f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "unknown user 'nobody' (this export holds " in output
    assert "ask for a new user with their reviews instead" in output
    assert "Traceback" not in output and "HYDRA_FULL_ERROR" not in output
    assert "faiss" not in output  # its loader's start-up lines: recsys.cli.QUIET_LOGGERS


def test_blank_texts_and_a_rerank_depth_below_one_are_refused(tiny_export):
    recommender = Recommender.from_export(tiny_export[0])
    with pytest.raises(InvalidRequestError, match="^a query is empty; give some text$"):
        recommender.recommend_query(" \t")
    with pytest.raises(InvalidRequestError, match="^a review's text is empty; give its text$"):
        recommender.recommend_reviews([ReviewInput("great strings"), ReviewInput("")])
    for depth in (0, -5, 2.5):
        with pytest.raises(ValueError, match=rf"^rerank_top={depth!r} is not allowed: give the number"):
            Recommender(recommender.bundle, rerank_top=depth)


@pytest.mark.parametrize(("override", "message"), [
    ("k=abc", r"^k='abc' is not allowed: give a whole number >= 1, e.g. k=10$"),
    ("k=0", r"^k=0 is not allowed: give a whole number >= 1"),
    ("k=null", r"^k=None is not allowed: give a whole number >= 1"),
    ("exclude_seen=maybe", r"^exclude_seen='maybe' is not allowed: give true or false$"),
    ("rerank_top=-5", r"^rerank_top=-5 is not allowed: give the number of cosine candidates"),  # the Recommender's
])
def test_the_recommend_entry_names_a_bad_setting(tiny_export, override, message):
    from hydra import compose, initialize_config_dir

    from recsys.serving.cli import recommend

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("recommend", overrides=[f"export={tiny_export[0]}", "user=U0", override])
    with pytest.raises(ValueError, match=message):
        recommend(cfg)


def test_every_serving_setting_refuses_a_value_of_the_wrong_kind(tiny_export):
    # Before, index.nlist=abc or query_text_weight=abc failed with a TypeError deep in the index
    # or the recommender.
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from recsys.serving.cli import recommend

    def answer(overrides: list[str]) -> None:
        with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
            recommend(compose("recommend", overrides=overrides))

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        defaults = OmegaConf.to_container(compose("recommend", overrides=[f"export={tiny_export[0]}"]))
    # Which export, user and query (any name), users and out (paths); the HTTP server's own are
    # serve.py's (the next test's).
    settings = config_settings(defaults, skip=frozenset({"export", "user", "query", "users", "out"}))
    assert {"k", "rerank_top", "order", "text_backend", "index.nlist"} <= {key for key, _ in settings}
    answer([f"export={tiny_export[0]}", "user=U0"])  # the defaults themselves pass
    wrong = wrong_kind_refusals(answer, settings, [f"export={tiny_export[0]}", "user=U0"])
    assert not wrong, "\n".join(wrong)


def test_the_serve_entry_names_a_bad_port(tiny_export):
    from hydra import compose, initialize_config_dir

    from recsys.serving.cli import serve

    # port=99999 ended in uvicorn's "OverflowError: bind(): port must be 0-65535" traceback.
    for port, shown in (("abc", "'abc'"), ("99999", "99999"), ("-1", "-1"), ("true", "True")):
        with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
            cfg = compose("serve", overrides=[f"export={tiny_export[0]}", f"port={port}"])
        with pytest.raises(ValueError, match=rf"^port={shown} is not allowed: give a whole number in \[0, 65535\] "
                                             r"\(0: any free port; e\.g\. 8000\)$"):
            serve(cfg)


@pytest.mark.parametrize("rating", [7, 0.5, float("nan"), "many"])
def test_a_given_rating_off_the_scale_is_refused(recommender, rating):
    with pytest.raises(InvalidRequestError, match=r"is not on this export's rating scale, 1\.\.5"):
        recommender.recommend_reviews([ReviewInput("good strings", rating=rating)], k=2)


def _export_on_scale(tiny_export, tmp_path, scale: list[float] | None):
    import json
    import shutil

    copy = tmp_path / "export"
    shutil.copytree(tiny_export[0], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["rating_scale"] == [1.0, 5.0]  # written from the data's review fields
    if scale is None:
        del manifest["rating_scale"]  # as exports written before it was recorded
    else:
        manifest["rating_scale"] = scale
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return Recommender.from_export(copy)


def test_ratings_given_and_predicted_are_on_the_datas_scale(recommender, tiny_export, tmp_path):
    tens = _export_on_scale(tiny_export, tmp_path, [0.0, 10.0])
    item = str(tiny_export[2].data.item_ids[2])
    in_stars = recommender.recommend_reviews([ReviewInput("good strings", item_id=item, rating=4)], k=3)
    # 7.5 of 0..10 is 4 stars
    in_tens = tens.recommend_reviews([ReviewInput("good strings", item_id=item, rating=7.5)], k=3)
    assert [a.item_id for a in in_tens] == [a.item_id for a in in_stars]
    assert [a.cosine for a in in_tens] == [a.cosine for a in in_stars]
    for tens_answer, stars_answer in zip(in_tens, in_stars, strict=True):
        assert tens_answer.predicted_rating == pytest.approx((stars_answer.predicted_rating - 1) * 2.5, abs=1e-3)
        assert tens_answer.explanation.startswith(f"predicted {tens_answer.predicted_rating:.1f} of 10; ")
    known = tens.recommend_user(str(tiny_export[2].data.user_ids[0]), k=3)
    assert all(0 <= a.predicted_rating <= 10 for a in known)
    with pytest.raises(InvalidRequestError, match=r"rating 11 is not on this export's rating scale, 0\.\.10"):
        tens.recommend_reviews([ReviewInput("good strings", rating=11)], k=2)


def test_the_recommend_entry_names_the_rating_column_by_the_scale(tiny_export, tmp_path, capsys):
    from hydra import compose, initialize_config_dir

    from recsys.serving.cli import recommend

    _export_on_scale(tiny_export, tmp_path, [0.0, 10.0])
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("recommend", overrides=[f"export={tmp_path / 'export'}", "user=U0", "k=2"])
    answer = recommend(cfg)
    printed = capsys.readouterr().out
    assert "rating 0..10" in printed and "stars" not in printed
    assert f"{answer[0].predicted_rating:.2f}" in printed and answer[0].predicted_rating > 5  # 1..5 stars read 0..10


def test_an_export_without_a_recorded_scale_is_read_in_stars(recommender, tiny_export, tmp_path):
    older = _export_on_scale(tiny_export, tmp_path, None)
    assert (older.rating_scale.minimum, older.rating_scale.maximum) == (1.0, 5.0)
    reviews = [ReviewInput("good strings", rating=5)]
    assert [a.to_dict() for a in older.recommend_reviews(reviews, k=3)] == \
        [a.to_dict() for a in recommender.recommend_reviews(reviews, k=3)]


def test_the_export_records_the_scale_of_the_datas_review_fields():
    from types import SimpleNamespace

    from recsys.data.fields import ReviewFields
    from recsys.export.writer import _rating_scale

    datamodule = SimpleNamespace(dataset=SimpleNamespace(review_fields=ReviewFields(rating_min=2, rating_max=10)))
    assert _rating_scale(datamodule) == [2.0, 10.0]


def test_ids_given_as_whole_numbers_are_read_as_their_text(recommender):
    # The data's ids are text (a CSV's item 1143 is "1143"): ReviewInput(item_id=1143) was refused as an
    # unknown item though "1143" was in the catalog.
    assert as_id(1143) == "1143" and as_id(np.int64(7)) == "7" and as_id("007") == "007"
    assert as_id(True) is True and as_id(7.5) == 7.5 and as_id(None) is None  # not ids: left for the checks
    with pytest.raises(UnknownUserError, match=r"^unknown user '7'"):
        recommender.recommend_user(7)
    with pytest.raises(UnknownUserError, match=r"^unknown user '7'"):
        recommender.search([7])
    with pytest.raises(UnknownItemError, match=r"^unknown item '3'"):
        recommender.item(3)
    with pytest.raises(UnknownItemError, match=r"^unknown item ids: 3$"):
        recommender.recommend_reviews([ReviewInput("great strings", item_id=3, rating=5)])
