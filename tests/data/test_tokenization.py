from pathlib import Path

import numpy as np
import pytest

from recsys.data.tokenization import TokenCache, TokenizedTexts, token_counter, tokenizer_fingerprint

TEXTS = ["Warm sounding strings.", "A pop filter that works", "Warm sounding strings.", ""]


def test_tokens_match_the_tokenizer_and_are_truncated(tokenizer, tmp_path: Path):
    tokens = TokenCache(tokenizer, tmp_path).tokenize(TEXTS, max_length=6)
    for i, text in enumerate(TEXTS):
        assert tokens.row(i).tolist() == tokenizer(text, truncation=True, max_length=6)["input_ids"]
    assert tokens.lengths().max() == 6
    assert tokens.row(3).tolist() == [tokenizer.cls_token_id, tokenizer.sep_token_id]


def test_second_run_reads_the_cache_and_new_texts_are_appended(tokenizer, tmp_path: Path):
    first = TokenCache(tokenizer, tmp_path)
    a = first.tokenize(TEXTS, max_length=16)
    assert (first.last_hits, first.last_misses) == (0, 3)  # 3 distinct texts
    # A new cache object (a new run) with a tokenizer that was used with other settings since.
    tokenizer("x", padding="max_length", max_length=64, truncation=True)
    second = TokenCache(tokenizer, tmp_path)
    b = second.tokenize(TEXTS[::-1] + ["something new"], max_length=16)
    assert (second.last_hits, second.last_misses) == (3, 1)
    assert [b.row(i).tolist() for i in range(4)] == [a.row(i).tolist() for i in range(3, -1, -1)]
    # Another max length is another key.
    third = TokenCache(tokenizer, tmp_path)
    third.tokenize(TEXTS, max_length=4)
    assert third.last_misses == 3
    assert len(list(tmp_path.glob("tokens-*.parquet"))) == 2


def test_cache_is_keyed_by_tokenizer(tokenizer, tmp_path: Path):
    from transformers import BertTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "warm", "strings"]))
    other = BertTokenizer(vocab=str(vocab))
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(tokenizer)
    TokenCache(tokenizer, tmp_path).tokenize(TEXTS, 16)
    cache = TokenCache(other, tmp_path)
    tokens = cache.tokenize(TEXTS, 16)
    assert cache.last_misses == 3
    assert tokens.row(0).tolist() == [2, 5, 1, 6, 1, 3]


def test_pad_makes_a_batch_padded_to_its_longest_row():
    tokens = TokenizedTexts(ids=np.array([5, 6, 7, 8, 9, 10]), offsets=np.array([0, 3, 4, 6]), pad_token_id=0)
    ids, mask = tokens.pad([2, 0, 1])
    assert ids.tolist() == [[9, 10, 0], [5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 0], [1, 1, 1], [1, 0, 0]]


def test_pad_to_a_multiple_rounds_the_width_up_with_masked_padding():
    tokens = TokenizedTexts(ids=np.array([5, 6, 7, 8, 9, 10]), offsets=np.array([0, 3, 4, 6]), pad_token_id=0)
    ids, mask = tokens.pad([2, 0, 1], multiple=4)
    assert ids.tolist() == [[9, 10, 0, 0], [5, 6, 7, 0], [8, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]]
    assert tokens.pad([0], multiple=3)[0].shape == (1, 3)  # already a multiple: unchanged
    with pytest.raises(ValueError, match="multiple must be >= 1"):
        tokens.pad([0], multiple=0)
    # An encoder's positions cap the rounding, never the longest row.
    assert tokens.pad([2, 0, 1], multiple=4, max_width=3)[0].tolist() == [[9, 10, 0], [5, 6, 7], [8, 0, 0]]
    assert tokens.pad([2, 0, 1], multiple=4, max_width=2)[0].shape == (3, 3)
    assert tokens.pad([1], multiple=4, max_width=3)[0].tolist() == [[8, 0, 0]]


def test_token_counter_counts_without_special_tokens_or_truncation(tokenizer):
    tokenizer("x", padding="max_length", max_length=64, truncation=True)
    count = token_counter(tokenizer)
    long_text = "guitar " * 600
    assert count(["warm strings", long_text]) == [2, 600]


def test_subset_takes_rows_in_the_order_given_repeats_included():
    texts = TokenizedTexts.from_rows([[101, 5, 102], [101, 102], [101, 7, 8, 9, 102]], pad_token_id=3)
    picked = texts.subset([2, 0, 2])
    assert [picked.row(i).tolist() for i in range(3)] == [[101, 7, 8, 9, 102], [101, 5, 102], [101, 7, 8, 9, 102]]
    assert picked.offsets.tolist() == [0, 5, 8, 13] and picked.pad_token_id == 3
    assert len(texts.subset([])) == 0
