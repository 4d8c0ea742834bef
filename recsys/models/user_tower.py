"""User tower: pools the user's review history into one unit vector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recsys.settings import checked_choice, checked_number, checked_whole_number

POOLINGS = ("attention", "transformer", "mean")
NUM_RATING_LEVELS = 6  # 0 = padding, 1..5 stars


class UserTower(nn.Module):
    """For each history entry: projected review-text embedding + the reviewed item's embedding
    (id embedding + projected frozen document embedding) + a rating embedding; entries are
    mixed by an optional small transformer and pooled by attention (or mean), then projected.

    Inputs are the history of a :class:`~recsys.data.batches.PairBatch` plus the text embeddings
    looked up for it. A user with an empty history gets a learned vector.
    """

    def __init__(
        self, text_dim: int, num_items: int, dim: int = 128, pooling: str = "attention", layers: int = 1,
        heads: int = 4, dropout: float = 0.1, item_embedding: nn.Embedding | None = None,
    ) -> None:
        super().__init__()
        pooling = checked_choice("model.net.user.pooling", pooling, POOLINGS)
        layers = checked_whole_number("model.net.user.layers", layers, least=1)
        heads = checked_whole_number("model.net.user.heads", heads, least=1)
        dropout = checked_number("model.net.user.dropout", dropout, least=0, below=1)
        if pooling == "transformer" and dim % heads:
            raise ValueError(f"model.net.user.heads={heads} is not allowed with pooling=transformer: give a "
                             f"number of heads that divides model.net.dim={dim}")
        self.pooling = pooling
        self.review_projection = nn.Linear(text_dim, dim)
        self.item_text_projection = nn.Linear(text_dim, dim)
        # Sharing the item tower's id table puts history items and candidates in one space.
        self.item_embedding = item_embedding if item_embedding is not None else nn.Embedding(num_items, dim)
        self.rating_embedding = nn.Embedding(NUM_RATING_LEVELS, dim)
        self.entry_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.mixer = (
            nn.TransformerEncoder(
                nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True,
                                           norm_first=True),
                num_layers=layers, enable_nested_tensor=False,
            )
            if pooling == "transformer" else None
        )
        self.attention_score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))
        self.empty_history = nn.Parameter(torch.zeros(dim))
        self.output = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(
        self, review_text: torch.Tensor, item_text: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor,
        mask: torch.Tensor, item_present: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``review_text``/``item_text`` [B, H, text_dim], ``items`` [B, H] long, ``ratings`` [B, H]
        float (stars), ``mask`` [B, H] bool -> unit vectors [B, dim]. ``item_present`` [B, H] bool
        marks entries whose reviewed item is known (default: all), e.g. not a free-text query."""
        levels = ratings.round().long().clamp(0, NUM_RATING_LEVELS - 1) * mask
        item_part = self.item_text_projection(item_text) + self.item_embedding(items)
        if item_present is not None:
            item_part = item_part * item_present.unsqueeze(-1)
        entries = self.review_projection(review_text) + item_part + self.rating_embedding(levels)
        entries = self.dropout(self.entry_norm(entries))
        if self.mixer is not None:
            # Rows with an empty history would give NaN in attention: let them see one slot.
            safe = mask.clone()
            safe[:, 0] |= ~mask.any(1)
            entries = self.mixer(entries, src_key_padding_mask=~safe)
        if self.pooling == "mean":
            weights = mask.float() / mask.sum(1, keepdim=True).clamp(min=1)
        else:
            scores = self.attention_score(entries).squeeze(-1).masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=1).nan_to_num(0.0)
        pooled = torch.einsum("bh,bhd->bd", weights, entries)
        empty = ~mask.any(1, keepdim=True)
        pooled = torch.where(empty, self.empty_history.expand_as(pooled), pooled)
        return F.normalize(self.output(pooled) + pooled, dim=-1)
