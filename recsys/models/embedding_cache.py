"""Embeddings that are a pure function of (frozen weights, token ids), kept on disk between runs."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

from recsys.atomic import atomic_write
from recsys.data.tokenization import TokenizedTexts

if TYPE_CHECKING:
    from recsys.models.text_encoder import TextEncoder

log = logging.getLogger(__name__)


def tokens_fingerprint(tokens: TokenizedTexts) -> str:
    """sha256 of the texts' token ids and their boundaries (a cache key part: same tokens, same embeddings)."""
    digest = hashlib.sha256(tokens.ids.astype("int64").tobytes())
    digest.update(tokens.offsets.astype("int64").tobytes())
    return digest.hexdigest()


def cached_embeddings(
    directory: Path | str | None, encoder_fingerprint: str, tokens: TokenizedTexts,
    compute: Callable[[], torch.Tensor],
) -> torch.Tensor:
    """``compute()`` once per (encoder weights, token ids); later calls read the safetensors file.
    With ``directory`` None nothing is kept."""
    if directory is None:
        return compute()
    key = hashlib.sha256(f"{encoder_fingerprint}|{tokens_fingerprint(tokens)}".encode()).hexdigest()[:24]
    path = Path(directory) / f"embeddings-{key}.safetensors"
    if path.exists():
        log.info("Read %d cached embeddings from %s", len(tokens), path)
        return load_file(str(path))["embeddings"]
    embeddings = compute()
    atomic_write(path, lambda partial: save_file({"embeddings": embeddings.contiguous()}, str(partial)))
    return embeddings


def pretrained_embeddings(
    encoder: TextEncoder, token_sets: Sequence[TokenizedTexts], directory: Path | str | None,
    progress: bool = False,
) -> list[torch.Tensor]:
    """The ``encoder``'s pretrained (as loaded, never fine-tuned) embeddings [n, H] of each token
    set, through the disk cache of :func:`cached_embeddings`; the weights are hashed once."""
    fingerprint = encoder.pretrained_fingerprint()
    return [
        cached_embeddings(directory, fingerprint, tokens,
                          partial(encoder.encode, tokens, progress=progress, pretrained=True))
        for tokens in token_sets
    ]
