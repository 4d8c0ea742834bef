"""Zero-shot: the pretrained encoder, no training; user = their concatenated training reviews."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from recsys.baselines.base import Baseline
from recsys.data.datamodule import ReviewDataModule
from recsys.data.tokenization import TokenCache
from recsys.models.text_encoder import TextEncoder
from recsys.settings import checked_flag, checked_whole_number


class ZeroShot(Baseline):
    """Cosine between the mean-pooled pretrained embedding of a user's concatenated training
    reviews (most recent first, truncated to ``max_tokens``) and each item document's embedding."""

    name = "zero_shot"

    def __init__(self, pretrained_path: str | None = None, max_tokens: int = 256, bf16: bool = True,
                 encoder: TextEncoder | None = None) -> None:
        self.max_tokens = checked_whole_number("model.baseline.max_tokens", max_tokens, least=1)
        bf16 = checked_flag("model.baseline.bf16", bf16)
        self.encoder = encoder or TextEncoder(pretrained_path, trainable_layers=0, bf16=bf16)

    def fit(self, datamodule: ReviewDataModule) -> None:
        data = datamodule.prepared
        texts = data.review_texts
        users = []
        for user in range(data.num_users):
            reviews = data.histories.of(user, max_reviews=10_000)[::-1]
            users.append(" ".join(texts[r] for r in reviews))
        tokens = TokenCache(datamodule.tokenizer, datamodule.cache_dir / "tokens").tokenize(users, self.max_tokens)
        self.user_vectors = F.normalize(self.encoder.encode(tokens), dim=-1)
        self.item_vectors = F.normalize(self.encoder.encode(datamodule.item_tokens), dim=-1)

    def user_scores(self, users: np.ndarray) -> torch.Tensor:
        return self.user_vectors[torch.from_numpy(np.asarray(users))] @ self.item_vectors.T
