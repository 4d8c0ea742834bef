"""A teacher for the retrieval loss: EASE scores of each user's training items."""

from __future__ import annotations

import torch

from recsys.baselines.ease import ease_weights
from recsys.data.negatives import UserItemSets
from recsys.training.ranking import ease_scores

MAX_TEACHER_ITEMS = 20_000


class EaseTeacher:
    """EASE (Steck 2019) fitted on the training interactions; :meth:`scores` gives each user's
    item-item scores over the catalog. Its weights are a dense [I, I] matrix: for catalogs of up
    to ``MAX_TEACHER_ITEMS`` items."""

    def __init__(self, train_items: UserItemSets, l2: float = 200.0) -> None:
        if train_items.num_items > MAX_TEACHER_ITEMS:
            raise ValueError(
                f"the EASE teacher needs a dense items x items matrix ({train_items.num_items:,} items; at most "
                f"{MAX_TEACHER_ITEMS:,}): set model.module.loss.distill_weight=0 and model.module.ease_fusion=0 "
                "for this catalog")
        self.weights = torch.from_numpy(ease_weights(train_items.gram(), l2)).float()

    def scores(self, training_rows: torch.Tensor) -> torch.Tensor:
        """EASE scores [B, I] of every catalog item, from users' boolean training rows [B, I]
        (:meth:`UserItemSets.rows`; the caller has them already for its masks)."""
        if self.weights.device != training_rows.device:
            self.weights = self.weights.to(training_rows.device)  # once, on the first step on a GPU
        return ease_scores(training_rows, self.weights)
