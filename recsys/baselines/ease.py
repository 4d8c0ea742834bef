"""EASE (Steck 2019): a closed-form linear item-item model; optionally text-aware (collective EASE)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from recsys.baselines.base import Baseline
from recsys.data.datamodule import ReviewDataModule
from recsys.models.embedding_cache import pretrained_embeddings
from recsys.models.text_encoder import TextEncoder
from recsys.settings import checked_flag, checked_number
from recsys.training.ranking import ease_scores


def ease_weights(gram: np.ndarray, l2: float, side_gram: np.ndarray | None = None) -> np.ndarray:
    """EASE's item-item weights [I, I] from the Gram matrix ``X^T X`` of a binary users x items
    matrix X (:meth:`UserItemSets.gram`): ``B = I - P diagMat(1 / diag(P))`` with
    ``P = (X^T X + S + l2 I)^-1``, zero diagonal (float64).

    ``side_gram`` S [I, I] (default 0) brings item side information in as extra rows F [d, I] of
    X, as collective EASE does (Jeunen et al. 2020): S = F^T F."""
    gram = np.asarray(gram, dtype=np.float64)
    if side_gram is not None:
        gram = gram + side_gram
    inverse = np.linalg.inv(gram + l2 * np.eye(gram.shape[0]))
    weights = -inverse / np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    return weights


def text_gram(item_text: torch.Tensor, weight: float) -> np.ndarray:
    """``weight``² x the cosine similarities [I, I] of the centred item text embeddings [I, H]: the
    Gram matrix of the embeddings' H dimensions taken as extra rows of the interaction matrix."""
    text = item_text.double()
    text = F.normalize(text - text.mean(0), dim=-1)
    return (weight**2 * (text @ text.T)).numpy()


class EASE(Baseline):
    """``B = I - P diagMat(1 / diag(P))`` with ``P = (X^T X + l2 I)^-1``, zero diagonal; a user's
    scores are ``X_u B``. ``l2`` is the L2 weight (200 is best on Musical Instruments validation).

    With ``text_weight`` > 0 the item documents' pretrained embeddings join the interactions as
    extra rows (:func:`text_gram`), so that items with similar text share weight even where no
    user reviewed both (``model=text_ease``)."""

    name = "ease"

    def __init__(self, l2: float = 200.0, text_weight: float = 0.0, pretrained_path: str | None = None,
                 bf16: bool = True, embedding_cache_dir: str | None = None,
                 encoder: TextEncoder | None = None) -> None:
        self.l2 = checked_number("model.baseline.l2", l2, above=0)
        self.text_weight = checked_number("model.baseline.text_weight", text_weight, least=0,
                                          note="(0 = interactions alone)")
        bf16 = checked_flag("model.baseline.bf16", bf16)
        self.name = "text_ease" if self.text_weight else "ease"
        if encoder is None and self.text_weight:
            encoder = TextEncoder(pretrained_path, trainable_layers=0, bf16=bf16)
        self.encoder = encoder
        self.embedding_cache_dir = embedding_cache_dir

    def item_text(self, datamodule: ReviewDataModule) -> torch.Tensor:
        """Pretrained embeddings [I, H] of the item documents (training text only)."""
        if self.encoder is None:
            raise RuntimeError("EASE has no text encoder: model.baseline.text_weight is 0")
        return pretrained_embeddings(self.encoder, [datamodule.item_tokens], self.embedding_cache_dir)[0]

    def fit(self, datamodule: ReviewDataModule) -> None:
        self.train_items = datamodule.prepared.train_items
        side = text_gram(self.item_text(datamodule), self.text_weight) if self.text_weight else None
        self.weights = ease_weights(self.train_items.gram(), self.l2, side)

    def user_scores(self, users: np.ndarray) -> torch.Tensor:
        # In float64, as fitted (the float32 scores equal numpy's product's to the bit on Musical Instruments).
        return ease_scores(torch.from_numpy(self.train_items.rows(users)), torch.from_numpy(self.weights)).float()
