"""Column names and dtypes of the two tables every reader produces."""

from __future__ import annotations

import pandas as pd

INTERACTION_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "rating", "text", "summary", "timestamp")
ITEM_COLUMNS: tuple[str, ...] = ("item_id", "title", "description", "categories", "brand")

INTERACTION_DTYPES: dict[str, str] = {
    "user_id": "string",
    "item_id": "string",
    "rating": "float32",
    "text": "string",
    "summary": "string",
    "timestamp": "int64",
}
ITEM_DTYPES: dict[str, str] = {
    "item_id": "string",
    "title": "string",
    "description": "string",
    "categories": "string",
    "brand": "string",
}


def empty_interactions() -> pd.DataFrame:
    """An interactions table with no rows and the documented dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in INTERACTION_DTYPES.items()})


def empty_items() -> pd.DataFrame:
    """An items table with no rows and the documented dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in ITEM_DTYPES.items()})
