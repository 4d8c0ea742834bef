"""Which field of a data file's records holds each column of recsys' tables.

The defaults are the names of the Amazon review releases; a dataset of your own maps its names in
the data config (``data.dataset.review_fields`` and ``data.dataset.item_fields``, see
``conf/data/custom.yaml``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

ISO_DATE = "iso"
STARS_MIN, STARS_MAX = 1.0, 5.0


@dataclass(frozen=True)
class RatingScale:
    """A dataset's rating scale, ``minimum..maximum``, mapped linearly onto the model's 1..5 stars."""

    minimum: float = STARS_MIN
    maximum: float = STARS_MAX

    @property
    def is_stars(self) -> bool:
        return (self.minimum, self.maximum) == (STARS_MIN, STARS_MAX)

    def to_stars(self, rating: float) -> float:
        """``rating`` (on this scale) in stars."""
        if self.is_stars:
            return rating
        return STARS_MIN + (STARS_MAX - STARS_MIN) * (rating - self.minimum) / (self.maximum - self.minimum)

    def from_stars(self, stars: float) -> float:
        """``stars`` (1..5) on this scale."""
        if self.is_stars:
            return stars
        return self.minimum + (self.maximum - self.minimum) * (stars - STARS_MIN) / (STARS_MAX - STARS_MIN)

    def __str__(self) -> str:
        return f"{self.minimum:g}..{self.maximum:g}"


@dataclass(frozen=True)
class ReviewFields:
    """Field names of a reviews record.

    ``text`` and ``summary`` are two texts of one review (either may be ``None`` for a file that
    lacks it; a record needs at least one of them non-empty). Time comes from ``timestamp`` (unix
    seconds) or, when a record has none, from ``date`` read with ``date_format`` (a
    :func:`~datetime.datetime.strptime` format, or ``"iso"`` for ISO 8601; a date without a time
    zone is read as UTC). With neither field (both ``None``) every review has time 0: of a repeated
    (user, item) pair the last line is kept, and the temporal split is refused.

    Ratings run from ``rating_min`` to ``rating_max`` in the file and are mapped linearly onto the
    1..5 stars that the model predicts (0..10 -> 1..5: 5 becomes 3); a rating outside the range is
    a bad line.
    """

    user: str = "reviewerID"
    item: str = "asin"
    rating: str = "overall"
    text: str | None = "reviewText"
    summary: str | None = "summary"
    timestamp: str | None = "unixReviewTime"
    date: str | None = "reviewTime"
    date_format: str = "%m %d, %Y"
    rating_min: float = 1.0
    rating_max: float = 5.0

    @property
    def setting(self) -> str:
        """The config key of this mapping, named in messages."""
        return "data.dataset.review_fields"

    def __post_init__(self) -> None:
        for name in ("user", "item", "rating"):
            if not getattr(self, name):
                raise ValueError(f"data.dataset.review_fields.{name} must name a field, got {getattr(self, name)!r}")
        if not self.rating_min < self.rating_max:
            raise ValueError(
                "data.dataset.review_fields.rating_min must be below rating_max, got "
                f"{self.rating_min!r} and {self.rating_max!r}"
            )
        if not self.text and not self.summary:
            raise ValueError(
                "data.dataset.review_fields: set text (or summary) to the field that holds the review's text; "
                "recsys reads review text for the user tower and for item documents"
            )

    @property
    def rating_scale(self) -> RatingScale:
        """The file's rating scale, ``rating_min..rating_max``."""
        return RatingScale(self.rating_min, self.rating_max)

    def to_stars(self, rating: float) -> float:
        """``rating`` (in ``rating_min..rating_max``) on the 1..5 scale."""
        return self.rating_scale.to_stars(rating)

    @property
    def numeric(self) -> tuple[str, ...]:
        """The fields that hold numbers (a CSV file stores them as text)."""
        return tuple(name for name in (self.rating, self.timestamp) if name)

    @property
    def required(self) -> tuple[tuple[str, ...], ...]:
        """The mapped fields a record must hold, each as the names of which it needs one: the user,
        item and rating; the text or the summary; the timestamp or the date."""
        groups = ((self.user,), (self.item,), (self.rating,), (self.text, self.summary), (self.timestamp, self.date))
        return tuple(names for names in (tuple(n for n in group if n) for group in groups) if names)

    @property
    def optional(self) -> dict[str, tuple[str, ...]]:
        """The mapped fields that a record may lack, by role: a file in which no record holds one
        is read as if the field were ``None``, so the mapping is checked against the whole file.
        (``timestamp`` and ``date`` are left out: a record with neither is a bad line already.)"""
        return {role: (name,) for role, name in (("text", self.text), ("summary", self.summary)) if name}

    def key(self) -> str:
        """A stable text of the mapping, for cache keys."""
        return json.dumps(mapping(self), sort_keys=True)


@dataclass(frozen=True)
class ItemFields:
    """Field names of an item-metadata record; ``None`` for a field the file does not have.

    ``categories`` lists candidate names: the first one a record holds is read (the 2018 Amazon
    release says ``category``, the 2014 one ``categories``).
    """

    item: str = "asin"
    title: str | None = "title"
    description: str | None = "description"
    categories: Sequence[str] = ("category", "categories")
    brand: str | None = "brand"
    # The config key of this mapping, named in messages: scripts/add_items.py takes it as item_fields.
    setting: str = field(default="data.dataset.item_fields", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.item:
            raise ValueError(f"{self.setting}.item must name a field, got {self.item!r}")
        # Hydra hands lists over as ListConfig; a single name is accepted for one field.
        names = (self.categories,) if isinstance(self.categories, str) else tuple(self.categories or ())
        object.__setattr__(self, "categories", tuple(str(name) for name in names))

    @property
    def numeric(self) -> tuple[str, ...]:
        """The fields that hold numbers: none."""
        return ()

    @property
    def required(self) -> tuple[tuple[str, ...], ...]:
        """The mapped fields a record must hold: the item id (its text may come from any field)."""
        return ((self.item,),)

    @property
    def optional(self) -> dict[str, tuple[str, ...]]:
        """The mapped fields that a record may lack, by role (``categories``: any of its names)."""
        single = (("title", self.title), ("description", self.description), ("brand", self.brand))
        roles: dict[str, tuple[str, ...]] = {role: (name,) for role, name in single if name}
        if self.categories:
            roles["categories"] = tuple(self.categories)
        return roles

    def key(self) -> str:
        """A stable text of the mapping, for cache keys."""
        return json.dumps(mapping(self), sort_keys=True)


def mapping(fields: ReviewFields | ItemFields) -> dict[str, Any]:
    """Which field holds each role (and the rating scale, the date format): the dataclass's
    fields less where it is configured."""
    return {role: value for role, value in asdict(fields).items() if role != "setting"}


def settings_naming(fields: ReviewFields | ItemFields, names: tuple[str, ...]) -> list[str]:
    """The config keys that map ``names`` (file field names), e.g. ``data.dataset.review_fields.user``."""
    return [
        f"{fields.setting}.{role}" for role, value in mapping(fields).items()
        if (value in names if isinstance(value, str) else isinstance(value, tuple | list) and set(value) & set(names))
    ]


# The Amazon releases' names: the defaults of every reader (frozen, so safe to share).
AMAZON_REVIEW_FIELDS = ReviewFields()
AMAZON_ITEM_FIELDS = ItemFields()
