"""Tokenize texts once and keep the token ids on disk, keyed by (tokenizer, text, max length).

A cache file holds, for one tokenizer and one max length, the token ids of every text ever
tokenized with them, keyed by the text's sha256. A run that asks for texts already in the file
reads them back; new texts are tokenized and appended. Token ids are stored ragged (no padding);
batches are padded to their longest row when they are made.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase

from recsys.atomic import atomic_write
from recsys.cache_files import UNREADABLE, discard_unreadable

log = logging.getLogger(__name__)

TOKENIZE_BATCH = 1024


@dataclass
class TokenizedTexts:
    """Ragged token ids (CSR: ``ids[offsets[i]:offsets[i+1]]`` is text ``i``), special tokens included."""

    ids: np.ndarray
    offsets: np.ndarray
    pad_token_id: int = 0

    @classmethod
    def from_rows(cls, rows: list[list[int]], pad_token_id: int = 0) -> TokenizedTexts:
        """Token ids given one list per text (as a tokenizer returns them)."""
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        ids = np.concatenate([np.asarray(row, dtype=np.int64) for row in rows]) if rows else np.empty(0, np.int64)
        return cls(ids=ids, offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   pad_token_id=pad_token_id)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        """Tokens per text [len(self)]."""
        return np.diff(self.offsets)

    def row(self, index: int) -> np.ndarray:
        """The token ids of text ``index``, unpadded."""
        return self.ids[self.offsets[index] : self.offsets[index + 1]]

    def subset(self, rows: Sequence[int] | np.ndarray) -> TokenizedTexts:
        """The texts ``rows`` (repeats allowed), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.offsets[rows + 1] - self.offsets[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # Position j of the output comes from self.offsets[row] + (j - offsets[row's slot]).
        slot = np.repeat(np.arange(len(rows)), lengths)
        gather = self.offsets[rows][slot] + np.arange(offsets[-1]) - offsets[:-1][slot]
        return TokenizedTexts(ids=self.ids[gather].astype(np.int64), offsets=offsets, pad_token_id=self.pad_token_id)

    def pad(self, indices: np.ndarray | list[int], multiple: int = 1,
            max_width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids, attention_mask)`` of shape ``[len(indices), width]`` for these rows, where
        ``width`` is the longest row's length rounded up to a multiple of ``multiple``, but no more
        than ``max_width`` (an encoder's positions) where that still holds the longest row."""
        if multiple < 1:
            raise ValueError(f"multiple must be >= 1, got {multiple}")
        indices = np.asarray(indices, dtype=np.int64)
        lengths = self.offsets[indices + 1] - self.offsets[indices]
        longest = max(int(lengths.max(initial=0)), 1)
        width = -(-longest // multiple) * multiple
        if max_width is not None:
            width = max(min(width, max_width), longest)
        input_ids = np.full((len(indices), width), self.pad_token_id, dtype=np.int64)
        mask = np.arange(width)[None, :] < lengths[:, None]
        starts = self.offsets[indices]
        source = (starts[:, None] + np.arange(width)[None, :])[mask]
        input_ids[mask] = self.ids[source]
        return torch.from_numpy(input_ids), torch.from_numpy(mask.astype(np.int64))


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 of what decides a tokenizer's output: its full pipeline when it is a fast
    tokenizer (normaliser, pre-tokeniser, vocabulary), else its class and vocabulary."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        pipeline = json.loads(backend.to_str())
        # Truncation and padding are per-call state that the tokenizer keeps from its last call.
        pipeline.pop("truncation", None)
        pipeline.pop("padding", None)
        digest.update(json.dumps(pipeline, sort_keys=True).encode())
    else:
        digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(repr(sorted(tokenizer.special_tokens_map.items())).encode())
    return digest.hexdigest()


def token_counter(tokenizer: PreTrainedTokenizerBase) -> Callable[[list[str]], list[int]]:
    """A function giving the number of tokens of each text (no special tokens, no truncation)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return lambda texts: [
            len(ids) for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        ]
    # A private copy of the Rust tokenizer: the shared one keeps padding/truncation state from
    # its last call, and going around the Python wrapper makes counting three times faster.
    counter = Tokenizer.from_str(backend.to_str())
    counter.no_padding()
    counter.no_truncation()
    return lambda texts: [len(e.ids) for e in counter.encode_batch(texts, add_special_tokens=False)]


def _text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class TokenCache:
    """Token ids of texts, computed once per (tokenizer, text, max length) and kept under ``directory``."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, directory: Path | str) -> None:
        self.tokenizer = tokenizer
        self.directory = Path(directory)
        self.fingerprint = tokenizer_fingerprint(tokenizer)
        self.last_hits = 0
        self.last_misses = 0

    def path_for(self, max_length: int) -> Path:
        """The cache file of this tokenizer's texts truncated to ``max_length`` tokens."""
        return self.directory / f"tokens-{self.fingerprint[:16]}-L{max_length}.parquet"

    def tokenize(self, texts: list[str], max_length: int) -> TokenizedTexts:
        """Token ids of ``texts`` (truncated to ``max_length`` tokens), from the cache where possible."""
        path = self.path_for(max_length)
        keys = [_text_key(t) for t in texts]
        stored_keys, stored_ids, stored_offsets = self._load(path)
        position = {key: i for i, key in enumerate(stored_keys)}
        missing = sorted({i for i, key in enumerate(keys) if key not in position}, key=keys.__getitem__)
        missing_texts: dict[bytes, str] = {}
        for i in missing:
            missing_texts.setdefault(keys[i], texts[i])
        self.last_misses = len(missing_texts)
        self.last_hits = len(set(keys)) - self.last_misses

        if missing_texts:
            new_keys = list(missing_texts)
            new_rows = self._encode(list(missing_texts.values()), max_length)
            stored_keys = stored_keys + new_keys
            new_lengths = np.array([len(r) for r in new_rows], dtype=np.int64)
            stored_ids = np.concatenate([stored_ids, *new_rows]).astype(np.int32)
            stored_offsets = np.concatenate(
                [stored_offsets, stored_offsets[-1] + np.cumsum(new_lengths)]
            ).astype(np.int64)
            self._save(path, stored_keys, stored_ids, stored_offsets)
            position.update({key: len(position) + j for j, key in enumerate(new_keys)})
        log.info(
            "Tokens for %d texts (%d distinct, max %d tokens): %d from cache, %d tokenized", len(texts),
            self.last_hits + self.last_misses, max_length, self.last_hits, self.last_misses,
        )

        pad = int(self.tokenizer.pad_token_id or 0)
        stored = TokenizedTexts(ids=stored_ids, offsets=stored_offsets, pad_token_id=pad)
        return stored.subset([position[key] for key in keys])

    def _encode(self, texts: list[str], max_length: int) -> list[np.ndarray]:
        rows: list[np.ndarray] = []
        for start in range(0, len(texts), TOKENIZE_BATCH):
            encoded = self.tokenizer(
                texts[start : start + TOKENIZE_BATCH], truncation=True, max_length=max_length
            )["input_ids"]
            rows.extend(np.asarray(ids, dtype=np.int32) for ids in encoded)
        return rows

    @staticmethod
    def _load(path: Path) -> tuple[list[bytes], np.ndarray, np.ndarray]:
        nothing: tuple[list[bytes], np.ndarray, np.ndarray] = ([], np.zeros(0, dtype=np.int32),
                                                                 np.zeros(1, dtype=np.int64))
        if not path.exists():
            return nothing
        try:
            table = pq.read_table(path)
            ids_column = table.column("input_ids").combine_chunks()
            keys = table.column("text_sha256").to_pylist()
        except UNREADABLE as error:
            discard_unreadable([path], error)
            return nothing
        offsets = ids_column.offsets.to_numpy().astype(np.int64)
        ids = ids_column.values.to_numpy().astype(np.int32)
        return keys, ids, offsets - offsets[0]

    @staticmethod
    def _save(path: Path, keys: list[bytes], ids: np.ndarray, offsets: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        column = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(ids))
        table = pa.table({"text_sha256": pa.array(keys, type=pa.binary(32)), "input_ids": column})
        atomic_write(path, lambda partial: pq.write_table(table, partial))
