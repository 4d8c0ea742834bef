"""The HTTP API over a :class:`Recommender` (FastAPI).

``GET /health``, ``GET /items/{item_id}``, ``POST /recommend`` (exactly one of ``user_id``,
``reviews`` or ``query``). Inputs are validated with limits; OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recsys.serving.errors import InvalidRequestError, UnknownItemError, UnknownUserError
from recsys.serving.recommender import Recommendation, Recommender, ReviewInput

MAX_K = 1000
MAX_TEXT_CHARS = 5000
MAX_QUERY_CHARS = 1000
MAX_REVIEWS = 50
MAX_ID_CHARS = 64

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Text
    item_id: Identifier | None = None
    rating: float | None = Field(default=None, ge=1, le=5)


class RecommendBody(BaseModel):
    """Ask by ``user_id`` (a known user), ``reviews`` (a new user) or ``query`` (free text)."""

    model_config = ConfigDict(extra="forbid")
    user_id: Identifier | None = None
    reviews: list[ReviewBody] | None = Field(default=None, min_length=1, max_length=MAX_REVIEWS)
    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)] | None = None
    k: int = Field(default=10, ge=1, le=MAX_K)
    exclude_seen: bool = True

    @model_validator(mode="after")
    def exactly_one_way_to_ask(self) -> RecommendBody:
        given = [name for name in ("user_id", "reviews", "query") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of user_id, reviews, query (got {', '.join(given) or 'none'})")
        return self


class RecommendResponse(BaseModel):
    items: list[Recommendation]


def create_app(recommender: Recommender) -> FastAPI:
    """A FastAPI app answering from ``recommender`` (CPU-bound handlers run in the threadpool)."""
    app = FastAPI(title="recsys", version=str(recommender.bundle.manifest.get("recsys_version", "")),
                  description="Two-tower review-based recommendations: known users, new users' reviews, text queries.")

    @app.get("/health")
    def health() -> dict:
        manifest = recommender.bundle.manifest
        return {"status": "ok", "items": manifest["num_items"], "users": manifest["num_users"],
                "format_version": manifest["format_version"], "ease_fusion": recommender.bundle.ease_fusion}

    @app.get("/items/{item_id}")
    def item(item_id: str) -> dict:
        try:
            return recommender.item(item_id)
        except UnknownItemError as err:
            raise HTTPException(status_code=404, detail=str(err)) from None

    @app.post("/recommend", response_model=RecommendResponse)
    def recommend(body: RecommendBody) -> RecommendResponse:
        try:
            if body.user_id is not None:
                answer = recommender.recommend_user(body.user_id, body.k, body.exclude_seen)
            elif body.reviews is not None:
                reviews = [ReviewInput(r.text, r.item_id, r.rating) for r in body.reviews]
                answer = recommender.recommend_reviews(reviews, body.k, body.exclude_seen)
            elif body.query is not None:
                answer = recommender.recommend_query(body.query, body.k)
            else:  # RecommendBody refuses a body without one of the three
                raise HTTPException(status_code=422, detail="give exactly one of user_id, reviews, query")
        except UnknownUserError as err:
            raise HTTPException(status_code=404, detail=str(err)) from None
        except (UnknownItemError, InvalidRequestError) as err:  # in the body (an unknown item, a blank text)
            raise HTTPException(status_code=422, detail=str(err)) from None
        return RecommendResponse(items=answer)

    return app
