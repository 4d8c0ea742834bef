"""Embeddings that are a pure function of (frozen weights, token ids), kept on disk between runs.

The cache holds one row per distinct text (keyed by the sha256 of its token ids), so a run whose
texts overlap an earlier one's encodes only the new ones: another split seed, the folds of a
cross-validation, a reviews file that has grown. On the CPU a row does not depend on the batch it
was encoded in (length-sorted batches padded to a multiple of 32 tokens; tested bit for bit), so a
run reads the same embeddings whichever runs filled the cache before it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from recsys.atomic import atomic_write
from recsys.cache_files import UNREADABLE, discard_unreadable
from recsys.data.tokenization import TokenizedTexts
from recsys.progress import progress_bar

if TYPE_CHECKING:
    from recsys.models.text_encoder import TextEncoder

log = logging.getLogger(__name__)

DIGEST_BYTES = 32  # sha256 of a text's token ids
# Texts encoded between two shards written: a run stopped while it encodes (killed, out of time)
# loses at most this much work (about 2.5 minutes of 128-token reviews on 2 CPU cores).
SHARD_TEXTS = 16_384


def row_digests(tokens: TokenizedTexts) -> list[bytes]:
    """sha256 of each text's token ids (as int64), the key of its cached embedding."""
    ids, offsets = tokens.ids.astype("int64"), tokens.offsets
    return [hashlib.sha256(ids[offsets[i] : offsets[i + 1]].tobytes()).digest() for i in range(len(tokens))]


class EmbeddingStore:
    """The cached embeddings of one encoder (``encoder_fingerprint``) under ``directory``: files
    ``embeddings-<encoder>-<shard>.safetensors``, each holding ``digests`` [n, 32] (uint8) and
    ``embeddings`` [n, H]. A run that encodes new texts adds them as shards of at most
    :data:`SHARD_TEXTS`; shards are written atomically and never changed, so runs filling the cache at
    once (``cv.parallel``, the ranks of a distributed run) at worst encode a text twice."""

    def __init__(self, directory: Path | str, encoder_fingerprint: str) -> None:
        self.directory = Path(directory)
        self.prefix = f"embeddings-{encoder_fingerprint[:16]}-"

    def shards(self) -> list[Path]:
        """This encoder's shard files, in name order."""
        return sorted(self.directory.glob(f"{self.prefix}*.safetensors"))

    def lookup(self, digests: Sequence[bytes]) -> dict[bytes, torch.Tensor]:
        """The stored embedding of each of ``digests`` that the shards hold (a shard's embeddings are
        read only where it holds one of them)."""
        wanted = set(digests)
        found: dict[bytes, torch.Tensor] = {}
        for path in self.shards():
            try:
                found.update(self._hits(path, wanted, found))
            except (*UNREADABLE, SafetensorError) as error:
                discard_unreadable([path], error)
            if len(found) == len(wanted):
                break
        return found

    @staticmethod
    def _hits(path: Path, wanted: set[bytes], found: dict[bytes, torch.Tensor]) -> dict[bytes, torch.Tensor]:
        """The embeddings that the shard at ``path`` holds of the ``wanted`` digests not ``found`` yet."""
        with safe_open(str(path), framework="pt") as shard:
            blob = shard.get_tensor("digests").numpy().tobytes()
            keys = [blob[start : start + DIGEST_BYTES] for start in range(0, len(blob), DIGEST_BYTES)]
            hits = {key: row for row, key in enumerate(keys) if key in wanted and key not in found}
            if not hits:
                return {}
            rows = shard.get_tensor("embeddings")[list(hits.values())]
            return dict(zip(hits, rows, strict=True))

    def add(self, digests: Sequence[bytes], embeddings: torch.Tensor) -> Path:
        """Write a shard of ``embeddings`` [len(digests), H], named by its digests."""
        name = hashlib.sha256(b"".join(digests)).hexdigest()[:16]
        keys = torch.from_numpy(np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, DIGEST_BYTES).copy())
        tensors = {"digests": keys, "embeddings": embeddings.float().contiguous()}
        return atomic_write(self.directory / f"{self.prefix}{name}.safetensors",
                            lambda partial: save_file(tensors, str(partial)))


def cached_embeddings(
    directory: Path | str | None, encoder_fingerprint: str, tokens: TokenizedTexts,
    compute: Callable[[TokenizedTexts, Callable[[int], None] | None], torch.Tensor], shard_texts: int = SHARD_TEXTS,
    progress: bool = False,
) -> torch.Tensor:
    """Embeddings [len(tokens), H] of the texts: read from the store under ``directory`` where an
    earlier run encoded them, ``compute(missing, on_batch)`` for the others (each distinct text
    once), which join the store a shard of ``shard_texts`` at a time, shortest texts first, so that
    a run stopped midway keeps what it encoded. With ``directory`` None nothing is kept and every
    text is computed. ``progress``: one bar over every text to encode, which ``compute`` advances
    through ``on_batch(n)`` (None without a bar)."""
    if directory is None or len(tokens) == 0:
        with encoding_progress(len(tokens) if progress else 0) as on_batch:
            return compute(tokens, on_batch)
    store = EmbeddingStore(directory, encoder_fingerprint)
    digests = row_digests(tokens)
    found = store.lookup(digests)
    first_of: dict[bytes, int] = {}
    for row, key in enumerate(digests):
        if key not in found:
            first_of.setdefault(key, row)
    lengths = tokens.lengths()
    missing = sorted(first_of, key=lambda key: lengths[first_of[key]])  # stable: ties keep the texts' order
    with encoding_progress(len(missing) if progress else 0) as on_batch:
        for start in range(0, len(missing), shard_texts):
            keys = missing[start : start + shard_texts]
            computed = compute(tokens.subset([first_of[key] for key in keys]), on_batch)
            store.add(keys, computed)
            found.update(zip(keys, computed, strict=True))
    distinct = len(set(digests))
    log.info("Embeddings for %d texts (%d distinct): %d from cache, %d encoded", len(tokens), distinct,
             distinct - len(missing), len(missing))
    return torch.stack([found[key] for key in digests])


def pretrained_embeddings(
    encoder: TextEncoder, token_sets: Sequence[TokenizedTexts], directory: Path | str | None,
    progress: bool = False,
) -> list[torch.Tensor]:
    """The ``encoder``'s pretrained (as loaded, never fine-tuned) embeddings [n, H] of each token
    set, through the disk cache of :func:`cached_embeddings`; the weights are hashed once."""
    fingerprint = encoder.pretrained_fingerprint()

    def encode(tokens: TokenizedTexts, on_batch: Callable[[int], None] | None) -> torch.Tensor:
        return encoder.encode(tokens, pretrained=True, on_batch=on_batch)

    return [cached_embeddings(directory, fingerprint, tokens, encode, progress=progress) for tokens in token_sets]


@contextmanager
def encoding_progress(total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over ``total`` texts while the block runs, as the function that advances it
    by n texts; None (no bar) for 0. One bar spans every shard of the cache."""
    if total == 0:
        yield None
        return
    with progress_bar(total, f"Encoding {total:,} texts") as advance:
        yield advance
