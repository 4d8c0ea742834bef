"""Texts built from reviews: user histories, item documents, review documents.

Everything here takes the **training split only**. Held-out reviews must never reach a user's
history or an item's document; the callers (the DataModule) pass the training table, and the
tests check the result against the held-out texts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

DOCUMENT_SEPARATOR = " | "
ITEM_SOURCES: tuple[str, ...] = ("metadata", "reviews", "empty")

TokenCounter = Callable[[list[str]], list[int]]


def count_words(texts: list[str]) -> list[int]:
    """A tokenizer-free token counter (whitespace words), for tests and quick looks."""
    return [len(text.split()) for text in texts]


def join_sentences(first: str, second: str) -> str:
    """Join two texts as sentences: ``"Great strings. They last."``; empty parts are dropped."""
    first, second = first.strip(), second.strip()
    if not first or not second:
        return first or second
    glue = " " if first[-1] in ".!?:;" else ". "
    return f"{first}{glue}{second}"


def review_documents(reviews: pd.DataFrame) -> list[str]:
    """The text of each review as the encoder reads it: summary, then review text."""
    return [
        join_sentences(str(s), str(t))
        for s, t in zip(reviews["summary"].fillna(""), reviews["text"].fillna(""), strict=True)
    ]


@dataclass
class UserHistories:
    """Each user's training reviews, oldest first, most recent last, as indices into the
    training-review table (CSR layout: ``reviews[offsets[u]:offsets[u+1]]`` for user index ``u``).
    """

    offsets: np.ndarray
    reviews: np.ndarray

    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def of(self, user: int, max_reviews: int, exclude_review: int = -1) -> np.ndarray:
        """The last ``max_reviews`` training reviews of ``user``, without ``exclude_review``.

        The target review of a training pair is removed *before* the cap, so the history of a
        training pair has as many reviews as that of a held-out pair when the user has enough.
        """
        own = self.reviews[self.offsets[user] : self.offsets[user + 1]]
        if exclude_review >= 0:
            own = own[own != exclude_review]
        return own[-max_reviews:] if max_reviews > 0 else own[:0]


def build_user_histories(train: pd.DataFrame, user_index: pd.Index) -> UserHistories:
    """Group training reviews by user, ordered by time (ties by item id), most recent last.

    ``train`` is the training split with a default RangeIndex (its row number is the review
    index); ``user_index`` lists every user id, its position being the user index. Users
    without training reviews get an empty history.
    """
    users = user_index.get_indexer(train["user_id"])
    if (users < 0).any():
        missing = train["user_id"][users < 0].iloc[0]
        raise KeyError(f"user {missing!r} of the training table is not in the user index")
    order = np.lexsort((train["item_id"].to_numpy(dtype=str), train["timestamp"].to_numpy(), users))
    counts = np.bincount(users, minlength=len(user_index))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return UserHistories(offsets=offsets, reviews=order.astype(np.int64))


def metadata_document(row: Any) -> str:
    """An item's document from a row of the items table: ``title | brand | categories | description``."""
    parts = [str(row.title), str(row.brand), str(row.categories), str(row.description)]
    return DOCUMENT_SEPARATOR.join(p for p in parts if p and p != "<NA>")


def _within_budget(pieces: Sequence[str], token_counts: Sequence[int], max_tokens: int) -> list[str]:
    """Take pieces in order until the budget is reached; the last piece may overflow it and is
    cut by the tokenizer's truncation, so the document fills the budget exactly."""
    taken: list[str] = []
    used = 0
    for piece, count in zip(pieces, token_counts, strict=True):
        if not piece:
            continue
        if used >= max_tokens:
            break
        taken.append(piece)
        used += count
    return taken


def build_item_documents(
    item_index: pd.Index,
    train: pd.DataFrame,
    items: pd.DataFrame | None,
    max_tokens: int,
    count_tokens: TokenCounter = count_words,
) -> pd.DataFrame:
    """One document per item, in the order of ``item_index``.

    An item with usable metadata (title, brand, categories or description) gets
    ``title | brand | categories | description``. Otherwise its document is built from its
    **training** reviews: all summaries first (oldest first), then the review texts, taken until
    ``max_tokens`` tokens (by ``count_tokens``, which must count at least one token per
    whitespace word, as WordPiece does) are reached. An item with neither is ``""``.

    Returns a table with columns ``item_id, document, source`` (source in ``ITEM_SOURCES``).
    """
    documents = pd.Series("", index=item_index, dtype=object)
    sources = pd.Series("empty", index=item_index, dtype=object)

    if items is not None and len(items):
        known = items[items["item_id"].isin(item_index)]
        meta_docs = pd.Series(
            [metadata_document(row) for row in known.itertuples(index=False)],
            index=known["item_id"].to_numpy(),
            dtype=object,
        )
        meta_docs = meta_docs[meta_docs != ""]
        documents[meta_docs.index] = meta_docs
        sources[meta_docs.index] = "metadata"

    needs_reviews = sources[sources == "empty"].index
    reviews = train[train["item_id"].isin(needs_reviews)].sort_values(
        ["item_id", "timestamp", "user_id"], kind="stable"
    )
    summaries = reviews["summary"].fillna("").astype(str).tolist()
    texts = reviews["text"].fillna("").astype(str).tolist()
    positions = pd.Series(np.arange(len(reviews)), index=reviews["item_id"].to_numpy())
    candidates: dict[str, list[str]] = {}
    for item_id, rows in positions.groupby(level=0):
        pieces = [summaries[r] for r in rows] + [texts[r] for r in rows]
        # A piece has at least as many tokens as words, so the pieces that fill the budget by
        # words are a superset of those that fill it by tokens: count exactly only those.
        candidates[item_id] = _within_budget(pieces, count_words(pieces), max_tokens)
    flat = [piece for pieces in candidates.values() for piece in pieces]
    counts = iter(count_tokens(flat) if flat else [])
    for item_id, pieces in candidates.items():
        taken = _within_budget(pieces, [next(counts) for _ in pieces], max_tokens)
        if taken:
            documents[item_id] = DOCUMENT_SEPARATOR.join(taken)
            sources[item_id] = "reviews"

    return pd.DataFrame(
        {"item_id": item_index.to_numpy(), "document": documents.to_numpy(), "source": sources.to_numpy()}
    )
