"""Item tower: TextEncoder(item document) -> projection (+ item-id embedding) -> unit vector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recsys.data.tokenization import TokenizedTexts
from recsys.models.pooling import TEXT_POOLINGS, AttentionPooling
from recsys.models.text_encoder import PrefixCache, TextEncoder, encode_in_length_order, mean_pool
from recsys.settings import checked_choice, checked_flag, checked_number


class ItemTower(nn.Module):
    """Maps items to L2-normalised vectors of size ``dim``.

    The text part reads the item document. The optional item-id embedding is added for items of
    the training catalog; during training it is dropped per item with probability ``id_dropout``
    so that the text part alone still places cold items well. With ``id_dropout=1`` the table
    would be trained by the user tower alone (which shares it) and added to item vectors only at
    inference, so it builds none, as ``id_embedding=False``.

    ``pooling`` reduces the document's token states to one vector: ``mean`` (the encoder's own
    mean pooling) or ``attention`` (:class:`AttentionPooling`, learned; it starts as the mean).

    After :meth:`attach_catalog`, catalog items are encoded from cached frozen-encoder states
    (only the trainable top layers run); otherwise from the token ids given to :meth:`forward`.
    """

    def __init__(self, encoder: TextEncoder, num_items: int, dim: int = 128, id_embedding: bool = True,
                 id_dropout: float = 0.2, pooling: str = "mean") -> None:
        super().__init__()
        id_embedding = checked_flag("model.net.item.id_embedding", id_embedding)
        id_dropout = checked_number("model.net.item.id_dropout", id_dropout, least=0, most=1)
        pooling = checked_choice("model.net.item.pooling", pooling, TEXT_POOLINGS)
        self.encoder = encoder
        self.attention_pooling = AttentionPooling(encoder.hidden_size) if pooling == "attention" else None
        self.projection = nn.Linear(encoder.hidden_size, dim)
        self.id_embedding = nn.Embedding(num_items, dim) if id_embedding and id_dropout < 1.0 else None
        if self.id_embedding is not None:
            nn.init.normal_(self.id_embedding.weight, std=0.01)
        self.id_dropout = id_dropout
        self.prefix_cache: PrefixCache | None = None
        self.catalog_tokens: TokenizedTexts | None = None
        self.register_buffer("frozen_text", torch.empty(0), persistent=False)

    @property
    def dim(self) -> int:
        return self.projection.out_features

    def attach_catalog(self, tokens: TokenizedTexts, pretrained_text: torch.Tensor | None = None) -> None:
        """Cache what the frozen part of the encoder gives for every catalog item document: with
        a frozen encoder and mean pooling, the pooled embeddings (``pretrained_text`` when the
        caller has them, else encoded here); otherwise the token states after the frozen layers."""
        self.catalog_tokens = tokens
        if self.encoder.fully_frozen and self.attention_pooling is None:
            self.frozen_text = pretrained_text if pretrained_text is not None else self.encoder.encode(tokens)
        elif not self.encoder.train_embeddings:
            self.prefix_cache = PrefixCache(self.encoder, tokens)

    def text_embeddings(
        self, items: torch.Tensor | None, input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encoder output [N, H]: from the catalog caches for catalog ``items`` when attached,
        else by running the encoder on the given tokens; pooled as ``pooling`` says."""
        if items is not None and self.frozen_text.numel():
            return self.frozen_text[items]
        if items is not None and self.prefix_cache is not None:
            states, mask = self.prefix_cache.gather(items)
            return self._pool(self.encoder.states_from_prefix(states, mask), mask)
        input_ids, attention_mask = self._tokens(items, input_ids, attention_mask)
        return self._pool(self.encoder.token_states(input_ids, attention_mask), attention_mask)

    @torch.no_grad()
    def cold_vectors(self, tokens: TokenizedTexts, pretrained_text: torch.Tensor) -> torch.Tensor:
        """Unit vectors [N, dim] of item documents outside the catalog: the text part alone, as
        ``id_dropout`` trains it. ``pretrained_text`` holds the documents' embeddings by the encoder
        as loaded (:meth:`TextEncoder.encode` with ``pretrained``): with a frozen encoder and mean
        pooling they are what the tower reads, and the encoder is not run again."""
        if self.encoder.fully_frozen and self.attention_pooling is None:
            text = pretrained_text
        else:
            self.encoder.check_tokens(tokens)
            text = encode_in_length_order(lambda ids, mask: self.text_embeddings(None, ids, mask), tokens,
                                          device=self.projection.weight.device, max_width=self.encoder.max_tokens)
        weight = self.projection.weight
        return F.normalize(self.projection(text.to(weight.device, weight.dtype)), dim=-1)

    def _pool(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.attention_pooling is None:
            return mean_pool(states.float(), attention_mask)
        return self.attention_pooling(states, attention_mask)

    def _tokens(self, items: torch.Tensor | None, input_ids: torch.Tensor | None,
                attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if input_ids is None and items is not None and self.catalog_tokens is not None:
            ids, mask = self.catalog_tokens.pad(items.cpu().numpy())
            return ids.to(items.device), mask.to(items.device)
        if input_ids is None or attention_mask is None:
            raise ValueError("ItemTower needs token ids and their attention mask, or catalog item indices after "
                             "attach_catalog()")
        return input_ids, attention_mask

    def forward(
        self, items: torch.Tensor | None, input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Unit vectors [N, dim]. ``items`` is None for texts outside the catalog (cold items)."""
        hidden = self.projection(self.text_embeddings(items, input_ids, attention_mask))
        if self.id_embedding is not None and items is not None:
            ids = self.id_embedding(items)
            if self.training and self.id_dropout > 0:
                keep = torch.rand(ids.shape[0], 1, device=ids.device) >= self.id_dropout
                ids = ids * keep
            hidden = hidden + ids
        return F.normalize(hidden, dim=-1)
