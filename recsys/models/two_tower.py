"""The two-tower network: item tower, user tower and scoring head over one text encoder."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoConfig, PretrainedConfig

from recsys.data.batches import HistoryBatch, PairBatch
from recsys.data.catalog import Catalog
from recsys.data.tokenization import TokenizedTexts
from recsys.models.embedding_cache import pretrained_embeddings
from recsys.models.item_tower import ItemTower
from recsys.models.scoring_head import RatingScoring
from recsys.models.text_encoder import TextEncoder
from recsys.models.user_tower import UserTower
from recsys.settings import checked_choice, checked_whole_number

log = logging.getLogger(__name__)

REVIEW_ENCODERS = ("frozen", "finetune")


class TwoTowerModel(RatingScoring):
    """Item tower, user tower and scoring head.

    Args:
        num_items: catalog size (item-id embeddings).
        text: ``pretrained_path``, ``trainable_layers``, ``bf16`` of the :class:`TextEncoder`.
        dim: size of the user and item vectors.
        item: ``id_embedding``, ``id_dropout``, ``pooling`` of the :class:`ItemTower`.
        user: ``pooling``, ``layers``, ``heads``, ``dropout`` of the :class:`UserTower`, and
            ``review_encoder``: ``frozen`` (review texts embedded once by the pretrained encoder)
            or ``finetune`` (by the item tower's encoder as it is fine-tuned: with gradients in
            training steps; in evaluation from a cache of every training review, re-embedded
            after the encoder has changed; needs ``text.trainable_layers`` != 0).
        head: ``hidden``, ``dropout`` of the :class:`ScoringHead`.
        biases: add an item bias and the user's shrunk mean rating deviation (from the history,
            ``sum(r - mean) / (n + bias_shrinkage)``, scaled by a learned weight) to the head's rating.
        bias_shrinkage: pseudo-count pulling users with short histories to the global mean.
        embedding_cache_dir: folder keeping pretrained embeddings between runs (None: not kept).
        encoder_config: a BERT-family config, or a dict of its fields (``model_type`` naming the family;
            default ``bert``), for a randomly initialised encoder (tests) instead of weights.
    """

    review_text: torch.Tensor
    item_text: torch.Tensor
    tuned_review_text: torch.Tensor

    def __init__(
        self, num_items: int, text: dict | None = None, dim: int = 128, item: dict | None = None,
        user: dict | None = None, head: dict | None = None, biases: bool = True, bias_shrinkage: float = 3.0,
        embedding_cache_dir: str | Path | None = None, encoder_config: PretrainedConfig | dict | None = None,
    ) -> None:
        super().__init__()
        dim = checked_whole_number("model.net.dim", dim, least=1, note="(the vectors' size, e.g. 128)")
        text = dict(text or {})
        user = dict(user or {})
        self.review_encoder = checked_choice("model.net.user.review_encoder", user.pop("review_encoder", "frozen"),
                                             REVIEW_ENCODERS)
        if isinstance(encoder_config, dict):
            fields = dict(encoder_config)
            encoder_config = AutoConfig.for_model(fields.pop("model_type", "bert"), **fields)
        encoder = TextEncoder(
            pretrained_path=text.get("pretrained_path"), trainable_layers=text.get("trainable_layers", 1),
            bf16=text.get("bf16", True), config=encoder_config,
        )
        if self.review_encoder == "finetune" and encoder.trainable_layers == 0:
            raise ValueError("model.net.user.review_encoder=finetune fine-tunes the encoder on the review texts, "
                             "but model.text.trainable_layers=0 freezes it: set trainable_layers to -1 or 1.."
                             f"{encoder.num_layers}, or use review_encoder=frozen")
        self.item_tower = ItemTower(encoder, num_items, dim, **(item or {}))
        self.user_tower = UserTower(
            encoder.hidden_size, num_items, dim, item_embedding=self.item_tower.id_embedding, **user
        )
        self.init_rating_scoring(num_items, dim, head, biases, bias_shrinkage)
        self.embedding_cache_dir = embedding_cache_dir
        self.register_buffer("review_text", torch.empty(0), persistent=False)
        self.register_buffer("item_text", torch.empty(0), persistent=False)
        # review_encoder=finetune: the training reviews embedded by the encoder as it is now, for
        # evaluation; stale once a training step or a checkpoint load has changed the encoder.
        self.register_buffer("tuned_review_text", torch.empty(0), persistent=False)
        self.tuned_review_text_stale = True
        self.register_load_state_dict_post_hook(TwoTowerModel._mark_tuned_review_text_stale)
        self.review_tokens: TokenizedTexts | None = None

    @property
    def encoder(self) -> TextEncoder:
        return self.item_tower.encoder

    @property
    def catalog_attached(self) -> bool:
        return self.item_text.numel() > 0

    def attach_catalog(self, catalog: Catalog, progress: bool = True) -> None:
        """Embed the training reviews and item documents with the pretrained encoder (read from
        the disk cache when possible) and cache the item tower's frozen states."""
        self.mean_rating.fill_(catalog.mean_rating)
        device = self.mean_rating.device
        self.review_text, self.item_text = (text.to(device) for text in pretrained_embeddings(
            self.encoder, [catalog.review_tokens, catalog.item_tokens], self.embedding_cache_dir, progress))
        self.review_tokens = catalog.review_tokens
        self.tuned_review_text_stale = True
        self.item_tower.attach_catalog(catalog.item_tokens, pretrained_text=self.item_text)

    @staticmethod
    def _mark_tuned_review_text_stale(module: TwoTowerModel, incompatible_keys: object) -> None:
        module.tuned_review_text_stale = True

    def tuned_review_embeddings(self) -> torch.Tensor:
        """[reviews, text_dim] embeddings of every training review by the encoder as it is now
        (``review_encoder=finetune``), recomputed only when the encoder has changed since."""
        if self.tuned_review_text_stale or len(self.tuned_review_text) != len(self.review_text):
            tokens = self._attached_review_tokens()
            log.info("Embedding %d training reviews with the fine-tuned encoder", len(tokens))
            self.tuned_review_text = self.encoder.encode(tokens).to(self.mean_rating.device)
            self.tuned_review_text_stale = False
        return self.tuned_review_text

    def _attached_review_tokens(self) -> TokenizedTexts:
        if self.review_tokens is None:
            raise RuntimeError("attach_catalog() first: the training reviews are not attached")
        return self.review_tokens

    def _history_review_text(self, batch: PairBatch | HistoryBatch) -> torch.Tensor:
        if self.review_encoder == "frozen":
            return self.review_text[batch.history_reviews]
        if not self.training:
            return self.tuned_review_embeddings()[batch.history_reviews]
        self.tuned_review_text_stale = True  # this step's update changes the encoder
        unique, inverse = torch.unique(batch.history_reviews[batch.history_mask], return_inverse=True)
        input_ids, attention_mask = self._attached_review_tokens().pad(unique.cpu().numpy())
        encoded = self.encoder(input_ids.to(unique.device), attention_mask.to(unique.device))
        text = encoded.new_zeros(*batch.history_reviews.shape, encoded.shape[-1])
        text[batch.history_mask] = encoded[inverse]
        return text

    def user_vectors_from_texts(
        self, review_text: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor, mask: torch.Tensor,
    ) -> torch.Tensor:
        """Unit vectors [B, dim] of users given as reviews outside the training data (new users,
        queries): ``review_text`` [B, H, text_dim] from :meth:`TextEncoder.forward_pretrained`,
        ``items`` [B, H] catalog indices or -1 when the entry names no item, ``ratings`` [B, H]."""
        present = items >= 0
        known = items.clamp(min=0)
        return self.user_tower(review_text, self.item_text[known], known, ratings, mask, item_present=present)

    def user_vectors(self, batch: PairBatch | HistoryBatch) -> torch.Tensor:
        """Unit user vectors [B, dim] from the batch's histories (training reviews)."""
        return self.user_tower(
            self._history_review_text(batch), self.item_text[batch.history_items], batch.history_items,
            batch.history_ratings, batch.history_mask,
        )

    def item_vectors(self, items: torch.Tensor, input_ids: torch.Tensor | None = None,
                     attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Unit item vectors [N, dim] of catalog ``items`` (or of documents given as tokens)."""
        return self.item_tower(items, input_ids, attention_mask)

    @torch.no_grad()
    def catalog_vectors(self, num_items: int, batch_size: int = 256) -> torch.Tensor:
        """Unit vectors [num_items, dim] of the whole catalog (eval mode, no gradient)."""
        return torch.cat([
            self.item_vectors(torch.arange(start, min(start + batch_size, num_items), device=self.mean_rating.device))
            for start in range(0, num_items, batch_size)
        ])
