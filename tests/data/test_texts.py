import numpy as np
import pandas as pd

from recsys.data.texts import (
    build_item_documents,
    build_user_histories,
    count_words,
    join_sentences,
    review_documents,
)


def reviews(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "text", "summary", "timestamp"])


TRAIN = reviews([
    ("A", "x", 5.0, "loud and clear", "Great amp", 30),
    ("A", "y", 4.0, "bright tone", "Nice strings", 10),
    ("B", "x", 2.0, "hum at high gain", "Noisy", 20),
    ("A", "z", 3.0, "ok", "Fine", 30),  # same day as ("A", "x"): tie broken by item id
])


def test_user_histories_are_chronological_most_recent_last():
    users = pd.Index(["A", "B", "C"])
    histories = build_user_histories(TRAIN, users)
    assert histories.reviews[histories.offsets[0]:histories.offsets[1]].tolist() == [1, 0, 3]
    assert histories.of(1, max_reviews=20).tolist() == [2]
    assert histories.of(2, max_reviews=20).tolist() == []  # no training review
    assert histories.lengths().tolist() == [3, 1, 0]


def test_history_excludes_the_target_review_before_the_cap():
    histories = build_user_histories(TRAIN, pd.Index(["A", "B"]))
    assert histories.of(0, max_reviews=2).tolist() == [0, 3]
    assert histories.of(0, max_reviews=2, exclude_review=3).tolist() == [1, 0]
    assert histories.of(0, max_reviews=0).tolist() == []


def test_item_document_from_reviews_summaries_first_then_texts():
    items = pd.Index(["x", "y", "w"])
    docs = build_item_documents(items, TRAIN, None, max_tokens=100).set_index("item_id")
    # x: summaries by time (B at t=20, then A at t=30), then texts in the same order.
    assert docs.loc["x", "document"] == "Noisy | Great amp | hum at high gain | loud and clear"
    assert docs.loc["x", "source"] == "reviews"
    assert docs.loc["w", "document"] == "" and docs.loc["w", "source"] == "empty"


def test_item_document_respects_the_token_budget():
    items = pd.Index(["x"])
    # Budget 3 words: "Noisy" (1) + "Great amp" (2) fill it; texts are not added.
    docs = build_item_documents(items, TRAIN, None, max_tokens=3)
    assert docs.loc[0, "document"] == "Noisy | Great amp"
    # Budget 4: the next piece is added whole; the tokenizer's truncation cuts it at the budget.
    docs = build_item_documents(items, TRAIN, None, max_tokens=4)
    assert docs.loc[0, "document"] == "Noisy | Great amp | hum at high gain"


def test_item_document_prefers_metadata_and_falls_back_per_item():
    meta = pd.DataFrame({
        "item_id": ["x", "y"], "title": ["Blues Jr", ""], "description": ["A tube amp.", ""],
        "categories": ["Amps", ""], "brand": ["Fender", ""],
    })
    docs = build_item_documents(pd.Index(["x", "y"]), TRAIN, meta, max_tokens=100).set_index("item_id")
    assert docs.loc["x", "document"] == "Blues Jr | Fender | Amps | A tube amp."
    assert docs.loc["x", "source"] == "metadata"
    # y's metadata row is empty: its document comes from its training review.
    assert docs.loc["y", "document"] == "Nice strings | bright tone"
    assert docs.loc["y", "source"] == "reviews"


def test_exact_token_counter_is_used_for_the_budget():
    def two_per_word(texts):
        return [2 * n for n in count_words(texts)]

    docs = build_item_documents(pd.Index(["x"]), TRAIN, None, max_tokens=3, count_tokens=two_per_word)
    assert docs.loc[0, "document"] == "Noisy | Great amp"  # 2 tokens, then 4: budget reached
    docs = build_item_documents(pd.Index(["x"]), TRAIN, None, max_tokens=2, count_tokens=two_per_word)
    assert docs.loc[0, "document"] == "Noisy"


def test_review_documents_join_summary_and_text_as_sentences():
    frame = reviews([("A", "x", 5.0, "loud", "Great amp!", 1), ("A", "y", 5.0, "", "Only a headline", 2),
                     ("A", "z", 5.0, "only text", "", 3), ("A", "w", 5.0, "body", "Head", 4)])
    assert review_documents(frame) == ["Great amp! loud", "Only a headline", "only text", "Head. body"]
    assert join_sentences("", "") == ""


def test_histories_handle_many_users_quickly():
    rng = np.random.default_rng(0)
    n = 200_000
    frame = pd.DataFrame({"user_id": rng.integers(0, 20_000, n).astype(str),
                          "item_id": rng.integers(0, 5_000, n).astype(str),
                          "timestamp": rng.integers(0, 10**9, n)})
    users = pd.Index(np.unique(frame["user_id"]))
    histories = build_user_histories(frame, users)
    assert histories.lengths().sum() == n
    first = histories.of(0, 1000)
    assert (np.diff(frame["timestamp"].to_numpy()[first]) >= 0).all()
