"""Scoring head: an MLP over a (user, item) pair of vectors -> predicted rating and like-logit."""

from __future__ import annotations

import math

import torch
from torch import nn

MIN_RATING, MAX_RATING = 1.0, 5.0


class ScoringHead(nn.Module):
    """MLP over ``[u, v, u*v, |u-v|]`` -> (rating in [1, 5], like-logit)."""

    def __init__(self, dim: int, hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(4 * dim, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, 2),
        )

    def set_rating_prior(self, mean_rating: float) -> None:
        """Start the rating output at ``mean_rating`` (the training mean), not mid-scale."""
        share = (min(max(mean_rating, MIN_RATING + 0.01), MAX_RATING - 0.01) - MIN_RATING) / (MAX_RATING - MIN_RATING)
        with torch.no_grad():
            self.mlp[-1].bias[0] = math.log(share / (1 - share))

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``u``, ``v`` [..., dim] -> rating [...] in [1, 5] and like-logit [...]."""
        out = self.mlp(torch.cat([u, v, u * v, (u - v).abs()], dim=-1))
        rating = MIN_RATING + (MAX_RATING - MIN_RATING) * torch.sigmoid(out[..., 0])
        return rating, out[..., 1]
