"""Scoring head: an MLP over a (user, item) pair of vectors -> predicted rating and like-logit."""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from recsys.settings import checked_flag, checked_number, checked_whole_number

MIN_RATING, MAX_RATING = 1.0, 5.0


class ScoringHead(nn.Module):
    """MLP over ``[u, v, u*v, |u-v|]`` -> (rating in [1, 5], like-logit)."""

    def __init__(self, dim: int, hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        hidden = checked_whole_number("model.net.head.hidden", hidden, least=1)
        dropout = checked_number("model.net.head.dropout", dropout, least=0, below=1)
        self.mlp = nn.Sequential(
            nn.Linear(4 * dim, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, 2),
        )

    def set_rating_prior(self, mean_rating: float) -> None:
        """Start the rating output at ``mean_rating`` (the training mean), not mid-scale."""
        share = (min(max(mean_rating, MIN_RATING + 0.01), MAX_RATING - 0.01) - MIN_RATING) / (MAX_RATING - MIN_RATING)
        output = cast(nn.Linear, self.mlp[-1])
        with torch.no_grad():
            output.bias[0] = math.log(share / (1 - share))

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``u``, ``v`` [..., dim] -> rating [...] in [1, 5] and like-logit [...]."""
        out = self.mlp(torch.cat([u, v, u * v, (u - v).abs()], dim=-1))
        rating = MIN_RATING + (MAX_RATING - MIN_RATING) * torch.sigmoid(out[..., 0])
        return rating, out[..., 1]


class RatingScoring(nn.Module):
    """Rating and like-logit of (user, item) vectors: the :class:`ScoringHead`, plus (with
    ``biases``) an item bias and the user's shrunk mean rating deviation. The base of the networks
    that share it: the two-tower model and matrix factorisation."""

    head: ScoringHead
    item_bias: nn.Embedding | None
    user_offset_weight: nn.Parameter | None
    mean_rating: torch.Tensor

    def init_rating_scoring(self, num_items: int, dim: int, head: dict | None, biases: bool,
                            bias_shrinkage: float) -> None:
        """Build the head and, with ``biases``, the item biases (zero) and the user offset's weight."""
        biases = checked_flag("model.net.biases", biases)
        bias_shrinkage = checked_number("model.net.bias_shrinkage", bias_shrinkage, least=0)
        self.head = ScoringHead(dim, **(head or {}))
        self.item_bias = nn.Embedding(num_items, 1) if biases else None
        if self.item_bias is not None:
            nn.init.zeros_(self.item_bias.weight)
        self.user_offset_weight = nn.Parameter(torch.ones(())) if biases else None
        self.bias_shrinkage = bias_shrinkage
        self.register_buffer("mean_rating", torch.tensor(0.0))

    def user_offset(self, history_ratings: torch.Tensor, history_mask: torch.Tensor) -> torch.Tensor:
        """The user's shrunk mean deviation from the global mean rating [B] (0 for empty histories)."""
        deviation = ((history_ratings - self.mean_rating) * history_mask).sum(1)
        return deviation / (history_mask.sum(1) + self.bias_shrinkage)

    def score(self, users: torch.Tensor, item_vectors: torch.Tensor, items: torch.Tensor | None = None,
              user_offset: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted rating in [1, 5] and like-logit of (user, item) vector pairs [..., dim].

        With biases, the head's rating is shifted by the item's bias (``items`` given) and the
        user's offset (``user_offset`` [B], broadcast over trailing item dimensions)."""
        rating, like = self.head(users, item_vectors)
        if self.item_bias is None:
            return rating, like
        if items is not None:
            rating = rating + self.item_bias(items).squeeze(-1)
        if user_offset is not None and self.user_offset_weight is not None:
            offset = user_offset.reshape(user_offset.shape + (1,) * (rating.dim() - user_offset.dim()))
            rating = rating + self.user_offset_weight * offset
        return rating.clamp(1.0, 5.0), like
