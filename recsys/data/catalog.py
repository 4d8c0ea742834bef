"""What a model needs to know of the whole dataset, beyond single batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.data.negatives import UserItemSets
from recsys.data.tokenization import TokenizedTexts


@dataclass
class Catalog:
    """The item catalog and the training reviews that user histories point into.

    - ``item_tokens``: the document tokens of every item (row = item index).
    - ``review_tokens``: the tokens of every training review (row = review index of histories).
    - ``train_items``: each user's training items (excluded from rankings, never negatives).
    - ``item_train_counts``: training interactions per item (popularity; logQ correction).
    - ``mean_rating``: mean training rating.
    """

    num_users: int
    num_items: int
    item_tokens: TokenizedTexts
    review_tokens: TokenizedTexts
    train_items: UserItemSets
    item_train_counts: np.ndarray
    mean_rating: float
