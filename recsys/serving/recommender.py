"""Recommender: cosine top-N by faiss, re-scored by the MLP head, with one-line explanations.

Three ways to ask: a known user id (precomputed vector), a new user's reviews (optionally with
item ids and ratings), or a free-text query (a one-review history, ranked by the towers' cosine
blended with the text similarity of the query and each item's document). An export of a model trained
with ``model.module.ease_fusion`` ranks as that model was evaluated: cosine z-scores plus the
weight times EASE's z-scores of the asker's reviewed items, exact over the whole catalog (the
faiss index is then not used; EASE exports are for catalogs of up to 20,000 items).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recsys.data.fields import STARS_MAX, STARS_MIN, RatingScale
from recsys.data.negatives import UserItemSets
from recsys.export.reader import ExportBundle, load_export
from recsys.serving.backend_names import ONNX_FILE
from recsys.serving.errors import InvalidRequestError, UnknownItemError, UnknownUserError
from recsys.serving.index import IndexConfig, ItemIndex
from recsys.serving.text_backends import build_text_backend
from recsys.settings import checked_number, is_whole_number
from recsys.training.ranking import ease_scores, fused_scores

log = logging.getLogger(__name__)

RERANK_ORDERS = ("cosine", "like", "rating")
QUERY_RATING = 5.0  # a query states what the user likes
# Weight of the query-document text similarity in a free-text query's ranking (z-scores of each,
# per query): chosen on the validation reviews of Musical Instruments read as queries
# (scripts/benchmark_queries.py; README, "Free-text queries").
QUERY_TEXT_WEIGHT = 2.0
SNIPPET = 70


def as_id(value: Any) -> Any:
    """An id given as a whole number, as its decimal text (the data's ids are read as text: a file's
    ``285`` is the user ``"285"``), so that callers may give either; other values as they are."""
    return str(value) if isinstance(value, int | np.integer) and not isinstance(value, bool) else value


def unknown_id_hint(wanted: Any, known: Mapping[str, int], kind: str) -> str:
    """What to say of an id not in ``known``: the known id it differs from only in case or
    surrounding spaces, if there is one (ids are matched exactly), else how many ``kind`` there are
    and two of them. One pass over the ids, on the error path only."""
    folded = str(wanted).strip().casefold()
    near = next((i for i in known if str(i).casefold() == folded), None)
    if near is not None:
        return f"did you mean {near!r}? ids are matched exactly"
    examples = " and ".join(repr(i) for i in list(itertools.islice(known, 2)))
    return f"this export holds {len(known):,} {kind}, e.g. {examples}"


@dataclass
class ReviewInput:
    """A review of a user outside the training data: its text, and the item and rating if known (the
    rating on the data's scale, :attr:`Recommender.rating_scale`)."""

    text: str
    item_id: str | None = None
    rating: float | None = None


@dataclass
class Recommendation:
    """One recommended item: its rank (1 first), the score the list is ordered by, the towers'
    cosine, the head's predicted rating (on the data's scale) and like probability, why it was
    chosen, and a snippet of its document.

    ``score`` is what ``order`` ranks by: under ``cosine`` (the default) the trained retrieval
    score, which is the cosine itself, its fusion with EASE for an export trained with
    ``ease_fusion``, or, for a free-text query, its blend with the query's text similarity; under
    ``like`` or ``rating``, the head's like probability or predicted rating.
    """

    rank: int
    item_id: str
    score: float
    cosine: float
    predicted_rating: float
    like_probability: float
    explanation: str
    snippet: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Asker:
    """What the re-ranking and explanations need to know of whoever asks."""

    vector: torch.Tensor
    offset: torch.Tensor
    seen: np.ndarray
    review_vectors: torch.Tensor  # pretrained text embeddings of their reviews [R, text_dim]
    review_label: Callable[[int], str]  # "your review of <item>: "<snippet>"" of review r
    query_text: torch.Tensor | None = None  # a free-text query's pretrained embedding [text_dim]


def _short(text: str, limit: int = SNIPPET) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Recommender:
    """Recommendations from an export directory.

    Args:
        bundle: a loaded export.
        index: faiss index settings (exact ``flat`` by default).
        rerank_top: how many cosine candidates the head re-scores (at least k).
        order: final order of the candidates: ``cosine`` (the trained retrieval score: the cosine,
            or its fusion with EASE for such an export), ``like`` (head like-probability) or
            ``rating`` (head predicted rating).
        text_backend: how new reviews and queries are encoded: ``fp32``, ``bf16``, ``int8`` or
            ``onnx`` (see :mod:`recsys.serving.text_backends`); ``auto`` takes the export's choice.
        query_text_weight: a free-text query ranks the catalog by z(cosine of the towers) plus
            this weight times z(cosine of the query's and each item document's pretrained
            embeddings), exactly over the catalog; 0 = by the towers' cosine alone (the index).
    """

    def __init__(self, bundle: ExportBundle, index: IndexConfig | None = None, rerank_top: int = 100,
                 order: str = "cosine", text_backend: str = "auto", query_text_weight: float = QUERY_TEXT_WEIGHT,
                 ) -> None:
        if order not in RERANK_ORDERS:
            raise ValueError(f"order={order!r} is not allowed; use one of: {', '.join(RERANK_ORDERS)}")
        if not is_whole_number(rerank_top) or rerank_top < 1:
            raise ValueError(f"rerank_top={rerank_top!r} is not allowed: give the number of cosine candidates the "
                             "head re-scores, >= 1 (at least k are always taken)")
        self.query_text_weight = checked_number("query_text_weight", query_text_weight, least=0,
                                                note="(0 = rank queries by the towers' cosine alone)")
        self.bundle = bundle
        self.net = bundle.net
        if text_backend == "auto":
            default = "bf16" if self.net.encoder.bf16 else "fp32"
            text_backend = bundle.manifest.get("serving", {}).get("text_backend", default)
        self.text_backend = text_backend
        self.encode_texts = build_text_backend(text_backend, self.net.encoder, bundle.directory / ONNX_FILE)
        # One encoder call at a time: each already uses every core, and concurrent calls from the
        # server's thread pool only thrash the caches (measured: p99 latency under load).
        self._encoder_lock = threading.Lock()
        self.order = order
        self.rerank_top = rerank_top
        self.index = ItemIndex(bundle.item_vectors.numpy(), index)
        # Norms only: the documents' embeddings are not copied, which matters for large catalogs.
        self.document_norms = self.net.item_text.float().norm(dim=-1).clamp(min=1e-12)
        if bundle.ease_weights is not None and index is not None and index.kind != "flat":
            # Only an approximate index is worth a word: the default (flat) is exact, as the fused ranking is.
            log.info("This export ranks by cosine fused with EASE, exactly over the catalog: index=%s is not used",
                     index.kind)
        # Ratings given and predicted are on the data's scale (exports before it was recorded: stars).
        self.rating_scale = RatingScale(*bundle.manifest.get("rating_scale", (STARS_MIN, STARS_MAX)))
        config = bundle.config["data"]
        self.max_reviews = int(config.get("max_reviews", 20))
        self.review_max_tokens = int(config.get("review_max_tokens", 128))
        self.item_position = {item: i for i, item in enumerate(bundle.item_ids)}
        self.user_position = {user: i for i, user in enumerate(bundle.user_ids)}
        reviews = bundle.reviews.reset_index(drop=True)
        reviews["item"] = [self.item_position[i] for i in reviews["item_id"]]
        order_in_time = reviews.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
        self.user_reviews = {
            user: np.array(rows, dtype=np.int64) for user, rows in order_in_time.groupby("user_id").groups.items()
        }
        self.reviews = reviews
        # Plain arrays and lists: pandas row access costs microseconds per call on the hot path.
        self.item_id_list = [str(i) for i in bundle.item_ids]
        self.item_snippets = bundle.items["snippet"].astype(str).tolist()
        self.review_snippets = reviews["snippet"].astype(str).tolist()
        self.review_ratings = reviews["rating"].to_numpy(np.float32)
        self.review_items = reviews["item"].to_numpy()
        reviewers = np.array([self.user_position[u] for u in reviews["user_id"]], dtype=np.int64)
        self.seen = UserItemSets.from_pairs(reviewers, self.review_items, len(bundle.user_ids), len(bundle.item_ids))

    @classmethod
    def from_export(cls, directory: Path | str, **kwargs: Any) -> Recommender:
        """Load and verify an export directory, and build the index."""
        return cls(load_export(directory), **kwargs)

    # -- who asks ----------------------------------------------------------------------------
    def _known(self, user_id: str) -> _Asker:
        user_id = as_id(user_id)
        if user_id not in self.user_position:
            raise self.unknown_user(user_id)
        rows = self.user_reviews.get(user_id, np.zeros(0, dtype=np.int64))
        ratings = torch.from_numpy(self.review_ratings[rows[-self.max_reviews :]])[None]
        offset = self.net.user_offset(ratings, torch.ones_like(ratings, dtype=torch.bool))
        return _Asker(
            vector=self.bundle.user_vectors[self.user_position[user_id]],
            offset=offset[0],
            seen=self.seen.items_of(self.user_position[user_id]),
            review_vectors=self.net.review_text[torch.from_numpy(rows)],
            review_label=lambda r: self._label(self.review_items[rows[r]], self.review_snippets[rows[r]]),
        )

    def unknown_user(self, user_id: Any) -> UnknownUserError:
        """The error for a user id that this export does not hold, with a hint
        (:func:`unknown_id_hint`) and how to ask for a new user."""
        hint = unknown_id_hint(user_id, self.user_position, "users")
        return UnknownUserError(f"unknown user {user_id!r} ({hint}); ask for a new user with their reviews "
                                "instead (\"reviews\" in POST /recommend, or Recommender.recommend_reviews)", user_id)

    def _label(self, item: int, snippet: str) -> str:
        return f'your review of {self.item_id_list[item]} ({_short(self.item_snippets[item], 40)}): ' \
               f'"{_short(snippet, 60)}"'

    @torch.no_grad()
    def _new(self, reviews: list[ReviewInput], query: bool = False) -> _Asker:
        if not reviews:
            raise InvalidRequestError("at least one review is needed")
        if any(not str(r.text).strip() for r in reviews):
            raise InvalidRequestError("a query is empty; give some text" if query
                                      else "a review's text is empty; give its text")
        reviews = [replace(r, item_id=as_id(r.item_id)) for r in reviews[-self.max_reviews :]]
        unknown = [r.item_id for r in reviews if r.item_id is not None and r.item_id not in self.item_position]
        if unknown:
            raise UnknownItemError(f"unknown item ids: {', '.join(map(str, unknown[:5]))}")
        text, tower_text = self._embed([r.text for r in reviews])
        items = torch.tensor([self.item_position[r.item_id] if r.item_id is not None else -1 for r in reviews])
        ratings = torch.tensor([self._stars(r.rating) if r.rating is not None else QUERY_RATING for r in reviews])
        mask = torch.ones(1, len(reviews), dtype=torch.bool)
        vector = self.net.user_vectors_from_texts(tower_text[None], items[None], ratings[None], mask)[0]
        offset = self.net.user_offset(ratings[None], mask)[0]
        if query:
            labels = [f'your query "{_short(r.text, 60)}"' for r in reviews]
        else:
            labels = [
                self._label(self.item_position[r.item_id], r.text) if r.item_id is not None
                else f'your review "{_short(r.text, 60)}"'
                for r in reviews
            ]
        seen = np.array([int(i) for i in items.tolist() if i >= 0], dtype=np.int64)
        return _Asker(vector=vector, offset=offset, seen=seen, review_vectors=text, review_label=labels.__getitem__,
                      query_text=text[0] if query else None)

    # -- answers -----------------------------------------------------------------------------
    @torch.no_grad()
    def _answer(self, askers: list[_Asker], k: int, exclude_seen: bool) -> list[list[Recommendation]]:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        top = max(k, self.rerank_top)
        asker_vectors = torch.stack([a.vector for a in askers])
        query_texts = [a.query_text for a in askers if a.query_text is not None]
        blended = self.query_text_weight > 0 and len(query_texts) == len(askers)
        if blended:  # free-text queries: nothing seen to exclude, the whole catalog scored exactly
            values, top_items = self.query_scores(asker_vectors, torch.stack(query_texts)).topk(
                min(top, self.index.num_items), dim=1)
            scores, candidates = values.numpy(), top_items.numpy()
        else:
            rows = np.concatenate([np.full(len(a.seen), i) for i, a in enumerate(askers)]).astype(np.int64)
            seen = np.concatenate([a.seen for a in askers]).astype(np.int64)
            history = UserItemSets.from_pairs(rows, seen, len(askers), self.index.num_items)
            scores, candidates = self._retrieve(asker_vectors.numpy(), top, history, np.arange(len(askers)),
                                                exclude_seen)
        answers = []
        for asker, row_scores, row_items in zip(askers, scores, candidates, strict=True):
            valid = row_items >= 0
            items = torch.from_numpy(row_items[valid])
            vectors = self.bundle.item_vectors[items]
            rating, like = self.net.score(asker.vector.expand(len(items), -1), vectors, items,
                                          asker.offset.expand(len(items)))
            like = torch.sigmoid(like)
            rating = self._on_scale(rating)
            key = {"cosine": torch.from_numpy(row_scores[valid]), "like": like, "rating": rating}[self.order]
            best = torch.argsort(key, descending=True, stable=True)[:k].tolist()
            chosen = [int(items[i]) for i in best]
            explanations = self.explain(asker, chosen, [float(rating[i]) for i in best])
            cosine_values = (vectors @ asker.vector).numpy() if blended or self.bundle.ease_weights is not None \
                else row_scores[valid]
            answers.append([
                Recommendation(
                    rank=rank,
                    item_id=self.item_id_list[item],
                    score=round(float(key[i]), 6),
                    cosine=round(float(cosine_values[i]), 6),
                    predicted_rating=round(float(rating[i]), 4),
                    like_probability=round(float(like[i]), 4),
                    explanation=explanation,
                    snippet=self.item_snippets[item],
                )
                for rank, (i, item, explanation) in enumerate(zip(best, chosen, explanations, strict=True), start=1)
            ])
        return answers

    def query_similarities(self, vectors: torch.Tensor, texts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two scores [N, items] of queries given as tower vectors ``vectors`` [N, dim] and pretrained
        text embeddings ``texts`` [N, text_dim]: the towers' cosine, and the cosine of each query's
        text embedding and each item document's."""
        similarities = (F.normalize(texts.float(), dim=-1) @ self.net.item_text.float().T) / self.document_norms
        return vectors @ self.bundle.item_vectors.T, similarities

    def query_scores(self, vectors: torch.Tensor, texts: torch.Tensor, weight: float | None = None) -> torch.Tensor:
        """Ranking scores [N, items] of free-text queries (see :meth:`query_similarities`): z(towers'
        cosine) + ``weight`` (default ``query_text_weight``) z(text similarity), per query."""
        cosines, similarities = self.query_similarities(vectors, texts)
        weight = self.query_text_weight if weight is None else weight
        return fused_scores(cosines, similarities, torch.ones_like(cosines, dtype=torch.bool), weight)

    @torch.no_grad()
    def encode_queries(self, texts: list[str], batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Tower vectors [N, dim] and pretrained text embeddings [N, text_dim] of free-text queries,
        each read as a one-review history (as :meth:`recommend_query` reads one), in batches."""
        vectors, embeddings = [], []
        for start in range(0, len(texts), batch_size):
            text, tower_text = self._embed(texts[start : start + batch_size])
            one = torch.ones(len(text), 1)  # each query: a one-review history of no known item, QUERY_RATING stars
            vectors.append(
                self.net.user_vectors_from_texts(tower_text[:, None], -one.long(), QUERY_RATING * one, one.bool()))
            embeddings.append(text)
        return torch.cat(vectors), torch.cat(embeddings)

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pretrained text embeddings [N, text_dim] of ``texts`` (truncated as training reviews are),
        which explanations and a query's text similarity compare with the items' documents, and
        the embeddings that the user tower reads: the same, or for a model trained with
        ``review_encoder=finetune``, the fine-tuned encoder's (in PyTorch, whatever the backend)."""
        encoded = self.bundle.tokenizer(texts, truncation=True, max_length=self.review_max_tokens, padding=True,
                                        return_tensors="pt")
        with self._encoder_lock:
            pretrained = self.encode_texts(encoded["input_ids"], encoded["attention_mask"])
            if self.net.review_encoder == "frozen":
                return pretrained, pretrained
            return pretrained, self.net.encoder(encoded["input_ids"], encoded["attention_mask"])

    def _retrieve(self, queries: np.ndarray, k: int, history: UserItemSets, rows: np.ndarray,
                  exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, items)`` [len(queries), k], best first: the index's cosine search or, for an
        EASE-fused export, the fused scores over the whole catalog, EASE reading each query's
        ``history`` set (its row in ``rows``); ``exclude_seen`` leaves those items out."""
        if self.bundle.ease_weights is None:
            return self.index.search(queries, k, history if exclude_seen else None, rows=rows)
        cosines = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)) @ self.bundle.item_vectors.T
        reviewed = torch.from_numpy(history.rows(rows))
        candidates = ~reviewed if exclude_seen else torch.ones_like(reviewed)
        scores = fused_scores(cosines, ease_scores(reviewed, self.bundle.ease_weights), candidates,
                              self.bundle.ease_fusion)
        values, items = scores.masked_fill(~candidates, float("-inf")).topk(min(k, self.index.num_items), dim=1)
        return values.numpy(), torch.where(torch.isfinite(values), items, -1).numpy()

    def explain(self, asker: _Asker, items: list[int], ratings: list[float]) -> list[str]:
        """``predicted 4.6 stars; similar to your review of <item>: "<snippet>"`` for each item, naming
        the asker's review whose text is closest (cosine of pretrained embeddings) to the item's
        document. ``ratings`` are on the data's scale (``predicted 8.4 of 10`` where it is not 1..5)."""
        unit = "stars" if self.rating_scale.is_stars else f"of {self.rating_scale.maximum:g}"
        lines = [f"predicted {rating:.1f} {unit}" for rating in ratings]
        if len(asker.review_vectors) == 0 or not items:
            return lines
        reviews = F.normalize(asker.review_vectors, dim=-1)
        documents = F.normalize(self.net.item_text[torch.tensor(items)], dim=-1)
        closest = (reviews @ documents.T).argmax(0).tolist()
        return [f"{line}; similar to {asker.review_label(r)}" for line, r in zip(lines, closest, strict=True)]

    def _stars(self, rating: Any) -> float:
        """A given rating, on the data's scale, in the model's stars; refused unless a number on that scale."""
        try:
            value = float(rating)
        except (TypeError, ValueError):
            value = math.nan
        if not self.rating_scale.minimum <= value <= self.rating_scale.maximum:  # NaN is refused too
            raise InvalidRequestError(f"rating {rating!r} is not on this export's rating scale, {self.rating_scale}: "
                                      "give a number in it, or no rating")
        return self.rating_scale.to_stars(value)

    def _on_scale(self, stars: torch.Tensor) -> torch.Tensor:
        """The head's predicted stars on the data's rating scale."""
        if self.rating_scale.is_stars:
            return stars
        offset = self.rating_scale.from_stars(0.0)  # the map is affine: offset + slope * stars
        return offset + (self.rating_scale.from_stars(1.0) - offset) * stars

    def search(self, user_ids: list[str], k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Retrieval only, batched: ``(scores, item indices)`` [len(user_ids), k] of known users by
        their precomputed vectors, seen items excluded; no re-ranking or explanations. The scores
        are cosines (fused with EASE for such an export)."""
        user_ids = [as_id(u) for u in user_ids]
        unknown = [u for u in user_ids if u not in self.user_position]
        if unknown:
            raise self.unknown_user(unknown[0])
        positions = [self.user_position[u] for u in user_ids]
        queries = self.bundle.user_vectors.numpy()[positions]
        rows = np.asarray(positions, dtype=np.int64)
        return self._retrieve(queries, k, self.seen, rows, exclude_seen)

    def recommend_user(self, user_id: str, k: int = 10, exclude_seen: bool = True) -> list[Recommendation]:
        """Top-k for a known user, by their precomputed vector; their reviewed items are excluded."""
        return self._answer([self._known(user_id)], k, exclude_seen)[0]

    def recommend_users(self, user_ids: list[str], k: int = 10, exclude_seen: bool = True
                        ) -> list[list[Recommendation]]:
        """Top-k for many known users in one batched search."""
        return self._answer([self._known(u) for u in user_ids], k, exclude_seen)

    def recommend_reviews(self, reviews: list[ReviewInput], k: int = 10, exclude_seen: bool = True
                          ) -> list[Recommendation]:
        """Top-k for a new user given as reviews (texts, optionally item ids and ratings)."""
        return self._answer([self._new(reviews)], k, exclude_seen)[0]

    def recommend_query(self, text: str, k: int = 10) -> list[Recommendation]:
        """Top-k for a free-text statement of interests, read as a one-review history and ranked with
        its text similarity to each item's document (``query_text_weight``)."""
        return self._answer([self._new([ReviewInput(text=text)], query=True)], k, exclude_seen=False)[0]

    def item(self, item_id: str) -> dict:
        """The catalog entry of ``item_id`` (:class:`UnknownItemError` when unknown)."""
        item_id = as_id(item_id)
        if item_id not in self.item_position:
            hint = unknown_id_hint(item_id, self.item_position, "items")
            raise UnknownItemError(f"unknown item {item_id!r} ({hint})")
        position = self.item_position[item_id]
        row = self.bundle.items.iloc[position]
        return {"item_id": item_id, "snippet": str(row["snippet"]), "train_count": int(row["train_count"])}
