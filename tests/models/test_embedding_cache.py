"""Pretrained embeddings kept on disk: computed once per (weights, tokens), then read back."""

import numpy as np
import pytest
import torch

from recsys.data.tokenization import TokenizedTexts
from recsys.models.embedding_cache import pretrained_embeddings
from recsys.models.text_encoder import TextEncoder

REVIEWS = TokenizedTexts(ids=np.array([101, 2000, 2001, 102, 101, 3000, 102]), offsets=np.array([0, 4, 7]))
DOCUMENTS = TokenizedTexts(ids=np.array([101, 4000, 102]), offsets=np.array([0, 3]))


def test_pretrained_embeddings_are_computed_once_then_read_from_disk(tiny_bert_config, tmp_path, monkeypatch):
    torch.manual_seed(0)
    encoder = TextEncoder(config=tiny_bert_config, trainable_layers=1, bf16=False)
    fingerprints = []
    fingerprint = encoder.pretrained_fingerprint
    monkeypatch.setattr(encoder, "pretrained_fingerprint", lambda: fingerprints.append(1) or fingerprint())
    reviews, documents = pretrained_embeddings(encoder, [REVIEWS, DOCUMENTS], tmp_path)
    assert len(fingerprints) == 1  # the weights are hashed once for both sets
    assert reviews.shape == (2, encoder.hidden_size) and documents.shape == (1, encoder.hidden_size)
    assert torch.equal(reviews, encoder.encode(REVIEWS, pretrained=True))
    assert torch.equal(documents, encoder.encode(DOCUMENTS, pretrained=True))
    assert len(list(tmp_path.glob("embeddings-*.safetensors"))) == 2

    # Training the trainable layer does not touch the pretrained embeddings: the files still serve.
    with torch.no_grad():
        for parameter in encoder.parameters():
            if parameter.requires_grad:
                parameter.add_(1.0)

    def no_encoding(*args, **kwargs):
        raise AssertionError("encoded again instead of reading the cache")

    monkeypatch.setattr(encoder, "encode", no_encoding)
    again_reviews, again_documents = pretrained_embeddings(encoder, [REVIEWS, DOCUMENTS], tmp_path)
    assert torch.equal(again_reviews, reviews) and torch.equal(again_documents, documents)
    with pytest.raises(AssertionError, match="encoded again"):
        pretrained_embeddings(encoder, [REVIEWS, DOCUMENTS], None)  # no directory: nothing is kept
