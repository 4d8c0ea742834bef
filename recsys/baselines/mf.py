"""Matrix factorisation: learned user and item id embeddings, trained by the two-tower loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recsys.data.batches import HistoryBatch, PairBatch
from recsys.data.catalog import Catalog
from recsys.models.scoring_head import RatingScoring
from recsys.settings import checked_whole_number


class MatrixFactorization(RatingScoring):
    """User and item id embeddings (unit-normalised, so cosine retrieval applies), with the same
    scoring head, biases and losses as :class:`~recsys.models.two_tower.TwoTowerModel`; trained by
    :class:`~recsys.training.module.TwoTowerModule`. Reads no text."""

    def __init__(self, num_items: int, num_users: int, dim: int = 64, head: dict | None = None,
                 biases: bool = True, bias_shrinkage: float = 3.0) -> None:
        super().__init__()
        dim = checked_whole_number("model.net.dim", dim, least=1, note="(the vectors' size, e.g. 64)")
        self.user_embedding = nn.Embedding(num_users, dim)
        self.item_embedding = nn.Embedding(num_items, dim)
        nn.init.normal_(self.user_embedding.weight, std=0.1)
        nn.init.normal_(self.item_embedding.weight, std=0.1)
        self.init_rating_scoring(num_items, dim, head, biases, bias_shrinkage)

    def attach_catalog(self, catalog: Catalog, progress: bool = True) -> None:
        self.mean_rating.fill_(catalog.mean_rating)

    def user_vectors(self, batch: PairBatch | HistoryBatch) -> torch.Tensor:
        return F.normalize(self.user_embedding(batch.user), dim=-1)

    def item_vectors(self, items: torch.Tensor, input_ids: torch.Tensor | None = None,
                     attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.normalize(self.item_embedding(items), dim=-1)

    @torch.no_grad()
    def catalog_vectors(self, num_items: int, batch_size: int = 256) -> torch.Tensor:
        return self.item_vectors(torch.arange(num_items))
