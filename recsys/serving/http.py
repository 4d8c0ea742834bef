"""The HTTP API over a :class:`Recommender` (FastAPI).

``GET /health``, ``GET /items/{item_id}``, ``POST /recommend`` (exactly one of ``user_id``,
``reviews`` or ``query``). Inputs are validated with limits; OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from recsys.serving.errors import InvalidRequestError, UnknownItemError, UnknownUserError
from recsys.serving.recommender import Recommender, ReviewInput, as_id

MAX_K = 1000
MAX_TEXT_CHARS = 5000
MAX_QUERY_CHARS = 1000
MAX_REVIEWS = 50
MAX_ID_CHARS = 64

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]

# A JSON whole number is taken for its text (an id 285 for "285"), as the data's ids are read.
Identifier = Annotated[str, BeforeValidator(as_id), Field(min_length=1, max_length=MAX_ID_CHARS)]


class ReviewBody(BaseModel):
    """One review of a new user: what they wrote, and of which item, with what rating."""

    model_config = ConfigDict(extra="forbid")
    text: Text = Field(description="The review's text.")
    item_id: Identifier | None = Field(
        default=None, description="The reviewed item, if it is in the catalog (an unknown id is refused).")
    rating: float | None = Field(
        default=None, allow_inf_nan=False,
        description="The rating given, on the data's scale (GET /health: rating_scale; 1 to 5 stars for the Amazon "
        "data); another value is refused (422).")


class RecommendBody(BaseModel):
    """Ask by ``user_id`` (a known user), ``reviews`` (a new user) or ``query`` (free text): exactly one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"user_id": "A2IBPI20UZIR0U", "k": 10},
        {"reviews": [{"text": "Bright, long-lasting strings", "item_id": "B0002E1G5C", "rating": 5}], "k": 10},
        {"query": "warm sounding strings for an acoustic guitar", "k": 5},
    ]})
    user_id: Identifier | None = Field(default=None, description="A user of the training data (unknown: 404).")
    reviews: list[ReviewBody] | None = Field(
        default=None, min_length=1, max_length=MAX_REVIEWS,
        description="A new user's reviews, read by the user tower as a history.")
    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)] | None = Field(
        default=None, description="Free text describing what is wanted.")
    k: int = Field(default=10, ge=1, le=MAX_K, description="How many items to return.")
    exclude_seen: bool = Field(
        default=True, description="Leave out the items the user has reviewed (a known user's training items, "
        "or the items of the given reviews); a query has none.")

    @model_validator(mode="after")
    def exactly_one_way_to_ask(self) -> RecommendBody:
        """Refuse a body that names none, or more than one, of the three ways to ask."""
        given = [name for name in ("user_id", "reviews", "query") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of user_id, reviews, query (got {', '.join(given) or 'none'})")
        return self


class RecommendedItem(BaseModel):
    """One recommended item (:class:`recsys.serving.recommender.Recommendation`)."""

    model_config = ConfigDict(from_attributes=True)
    rank: int = Field(description="Its place in the list, 1 first.")
    item_id: str = Field(description="The item's id in the catalog.")
    score: float = Field(description="What the list is ordered by: the cosine, its fusion with EASE for an export "
                         "trained with ease_fusion, or for a query its blend with the text's similarity.")
    cosine: float = Field(description="Cosine of the user's and the item's vectors.")
    predicted_rating: float = Field(description="The scoring head's predicted rating, on the data's scale "
                                    "(GET /health: rating_scale).")
    like_probability: float = Field(description="The scoring head's probability that the user likes it.")
    explanation: str = Field(description="Why it was chosen, in one line.")
    snippet: str = Field(description="The beginning of the item's document.")


class RecommendResponse(BaseModel):
    """The recommended items, best first."""

    items: list[RecommendedItem] = Field(description="At most k items, best first.")


class HealthResponse(BaseModel):
    """The server is up, and what it serves."""

    status: str = Field(description='"ok" while the server answers.')
    items: int = Field(description="Items in the catalog.")
    users: int = Field(description="Known users (those of the training data).")
    format_version: int = Field(description="The export's format version.")
    ease_fusion: float = Field(description="Weight of EASE in the ranking; 0 for cosine ranking alone.")
    rating_scale: list[float] = Field(description="The data's rating scale [lowest, highest]: of the ratings a "
                                      "request gives and of the predicted ones.")


class CatalogItem(BaseModel):
    """A catalog entry."""

    item_id: str = Field(description="The item's id.")
    snippet: str = Field(description="The beginning of the item's document.")
    train_count: int = Field(description="Its interactions in the training data (0 for an item added after it).")


class ErrorResponse(BaseModel):
    """Why a request was refused."""

    detail: str = Field(description="What was wrong, and with which value.")


def json_safe(value: Any) -> Any:
    """``value`` with every float that JSON cannot hold (NaN, infinities) written as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def create_app(recommender: Recommender) -> FastAPI:
    """A FastAPI app answering from ``recommender`` (CPU-bound handlers run in the threadpool)."""
    app = FastAPI(title="recsys", version=str(recommender.bundle.manifest.get("recsys_version", "")),
                  description="Two-tower review-based recommendations: known users, new users' reviews, text queries.")

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 answer, but one that can echo a NaN (Python's JSON reader takes ``NaN``,
        which FastAPI's own answer then failed to write: a 500)."""
        return JSONResponse(status_code=422, content={"detail": json_safe(jsonable_encoder(error.errors()))})

    @app.get("/health")
    def health() -> HealthResponse:
        """Whether the server is up, the catalog's and the known users' sizes, and how it ranks."""
        manifest = recommender.bundle.manifest
        return HealthResponse(status="ok", items=manifest["num_items"], users=manifest["num_users"],
                              format_version=manifest["format_version"], ease_fusion=recommender.bundle.ease_fusion,
                              rating_scale=[recommender.rating_scale.minimum, recommender.rating_scale.maximum])

    # ":path": an id of one's own data may hold a slash ("strings/10-46"); it is the rest of the path.
    @app.get("/items/{item_id:path}", responses={404: {"model": ErrorResponse, "description": "Unknown item"}})
    def item(item_id: str) -> CatalogItem:
        """The catalog entry of one item."""
        try:
            return CatalogItem(**recommender.item(item_id))
        except UnknownItemError as err:
            raise HTTPException(status_code=404, detail=str(err)) from None

    @app.post("/recommend", responses={404: {"model": ErrorResponse, "description": "Unknown user"}})
    def recommend(body: RecommendBody) -> RecommendResponse:
        """Top-k items for a known user, a new user's reviews, or a free-text query.

        422 for a body that is not exactly one of the three, a value beyond its limits, a review of
        an item not in the catalog, a rating off the data's scale, or a blank text.
        """
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
            # Not the recommender's message, which names other users' ids (or one that differs in case).
            raise HTTPException(status_code=404, detail=f"unknown user {err.user_id!r}; ask for a new user with "
                                "their reviews instead (\"reviews\" in this body)") from None
        except (UnknownItemError, InvalidRequestError) as err:  # in the body (an unknown item, a blank text)
            raise HTTPException(status_code=422, detail=str(err)) from None
        return RecommendResponse(items=[RecommendedItem.model_validate(entry) for entry in answer])

    return app
