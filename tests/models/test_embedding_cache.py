"""Pretrained embeddings kept on disk: computed once per (weights, tokens), then read back."""

import logging

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from recsys.data.tokenization import TokenizedTexts
from recsys.models.embedding_cache import cached_embeddings, pretrained_embeddings, row_digests
from recsys.models.text_encoder import TextEncoder
from tests.conftest import recorded_progress_bars

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


def random_texts(count: int, seed: int) -> TokenizedTexts:
    """``count`` texts of 3 to 90 tokens: several encoding batches of different padded widths."""
    rng = np.random.default_rng(seed)
    return TokenizedTexts.from_rows([[101, *rng.integers(1000, 5000, rng.integers(1, 89)).tolist(), 102]
                                     for _ in range(count)])


def test_a_run_encodes_only_the_texts_no_earlier_run_did_and_reads_the_same_embeddings(tiny_bert_config, tmp_path,
                                                                                       monkeypatch):
    torch.manual_seed(0)
    encoder = TextEncoder(config=tiny_bert_config, trainable_layers=0, bf16=True)  # autocast, as trained
    texts = random_texts(300, seed=1)
    cold = pretrained_embeddings(encoder, [texts], tmp_path / "cold")[0]
    assert torch.equal(cold, encoder.encode(texts, pretrained=True))

    # Another cache, filled first by a run over a third of the texts (other batches, other widths).
    encoded: list[int] = []
    encode = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda tokens, **kw: encoded.append(len(tokens)) or encode(tokens, **kw))
    earlier = np.random.default_rng(2).choice(300, 100, replace=False)
    pretrained_embeddings(encoder, [texts.subset(earlier)], tmp_path / "warm")
    warm = pretrained_embeddings(encoder, [texts], tmp_path / "warm")[0]
    assert encoded == [100, 200]  # the second run encoded only the texts the first had not
    assert torch.equal(warm, cold)  # bit for bit: a row does not depend on the batch it was encoded in
    assert len(list((tmp_path / "warm").glob("embeddings-*.safetensors"))) == 2  # a shard a run

    # Repeated texts are encoded once; a run with nothing new writes nothing.
    twice = texts.subset([5, 7, 5, 5, 7])
    assert torch.equal(pretrained_embeddings(encoder, [twice], tmp_path / "dup")[0], cold[[5, 7, 5, 5, 7]])
    assert encoded[-1] == 2
    pretrained_embeddings(encoder, [texts], tmp_path / "warm")
    assert len(encoded) == 3 and len(list((tmp_path / "warm").glob("*.safetensors"))) == 2


def test_other_weights_never_read_the_rows_of_an_encoder(tiny_bert_config, tmp_path):
    torch.manual_seed(0)
    first = TextEncoder(config=tiny_bert_config, trainable_layers=0, bf16=False)
    second = TextEncoder(config=tiny_bert_config, trainable_layers=0, bf16=False)  # other random weights
    texts = random_texts(20, seed=3)
    a = pretrained_embeddings(first, [texts], tmp_path)[0]
    b = pretrained_embeddings(second, [texts], tmp_path)[0]
    assert not torch.allclose(a, b) and torch.equal(b, second.encode(texts, pretrained=True))
    assert len({path.name.split("-")[1] for path in tmp_path.glob("embeddings-*.safetensors")}) == 2


def test_row_digests_tell_texts_apart_by_their_token_ids():
    digests = row_digests(TokenizedTexts.from_rows([[101, 7, 102], [101, 7, 102], [101, 7, 0, 102], [101, 102]]))
    assert digests[0] == digests[1] and len(set(digests)) == 3 and {len(d) for d in digests} == {32}


def frozen_encoder(config) -> tuple[TextEncoder, str]:
    """A frozen fp32 encoder of ``config`` (seeded) and its fingerprint, the store's key."""
    torch.manual_seed(0)
    encoder = TextEncoder(config=config, trainable_layers=0, bf16=False)
    return encoder, encoder.pretrained_fingerprint()


def counting(encoder: TextEncoder, counts: list[int]):
    """``cached_embeddings``' compute by ``encoder``, appending the size of each call to ``counts``."""
    def encode(tokens: TokenizedTexts, on_batch) -> torch.Tensor:
        counts.append(len(tokens))
        return encoder.encode(tokens, pretrained=True)

    return encode


def test_a_run_stopped_while_encoding_keeps_the_shards_it_wrote(tiny_bert_config, tmp_path):
    encoder, fingerprint = frozen_encoder(tiny_bert_config)
    texts = random_texts(120, seed=4)
    calls: list[int] = []

    def stopped_at_the_third_shard(tokens: TokenizedTexts, on_batch) -> torch.Tensor:
        calls.append(len(tokens))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return encoder.encode(tokens, pretrained=True)

    with pytest.raises(KeyboardInterrupt):
        cached_embeddings(tmp_path, fingerprint, texts, stopped_at_the_third_shard, shard_texts=50)
    assert calls == [50, 50, 20] and len(list(tmp_path.glob("embeddings-*.safetensors"))) == 2
    shortest = np.argsort(texts.lengths(), kind="stable")[:100]  # shards fill shortest texts first
    resumed: list[int] = []
    encode = counting(encoder, resumed)
    embeddings = cached_embeddings(tmp_path, fingerprint, texts, encode, shard_texts=50)
    assert resumed == [20]  # only the texts the stopped run had not stored
    assert torch.equal(embeddings, encoder.encode(texts, pretrained=True))
    cached_embeddings(tmp_path, fingerprint, texts.subset(shortest), encode)
    assert resumed == [20]  # the stopped run's shards hold the shortest 100


def test_one_progress_bar_spans_every_shard_and_counts_each_text_once(tmp_path, tiny_bert_config, monkeypatch):
    # Each shard of 16,384 texts drew its own bar ("Encoding 16384 texts"): a run that encoded
    # 182,153 texts showed twelve bars in turn and no overall count or time left.
    torch.manual_seed(0)
    encoder = TextEncoder(config=tiny_bert_config, trainable_layers=0, bf16=False)
    texts = random_texts(120, seed=5)
    bars = recorded_progress_bars(monkeypatch)
    first = pretrained_embeddings(encoder, [texts.subset(np.arange(40))], tmp_path, progress=True)[0]
    assert bars == [{"advanced": 40, "description": "Encoding 40 texts", "total": 40}]
    shards: list[int] = []

    def encode(tokens: TokenizedTexts, on_batch) -> torch.Tensor:
        shards.append(len(tokens))
        return encoder.encode(tokens, batch_size=16, pretrained=True, on_batch=on_batch)

    fingerprint = encoder.pretrained_fingerprint()
    everything = cached_embeddings(tmp_path, fingerprint, texts, encode, shard_texts=50, progress=True)
    assert shards == [50, 30]  # 40 were cached
    assert bars[1] == {"advanced": 80, "description": "Encoding 80 texts", "total": 80}
    assert torch.equal(everything[:40], first)
    pretrained_embeddings(encoder, [texts], tmp_path, progress=True)
    assert len(bars) == 2  # nothing to encode: no bar
    pretrained_embeddings(encoder, [texts], None, progress=False)
    assert len(bars) == 2


def test_a_shard_that_cannot_be_read_is_removed_and_only_its_texts_are_encoded_again(tiny_bert_config, tmp_path,
                                                                                     caplog):
    encoder, fingerprint = frozen_encoder(tiny_bert_config)
    texts = random_texts(120, seed=5)
    encoded: list[int] = []
    encode = counting(encoder, encoded)
    expected = cached_embeddings(tmp_path, fingerprint, texts, encode, shard_texts=50)
    shards = sorted(tmp_path.glob("embeddings-*.safetensors"), key=lambda path: path.stat().st_mtime_ns)
    assert encoded == [50, 50, 20] and len(shards) == 3
    # The last shard (20 texts) cut short, the first one's embeddings fewer than its digests say.
    shards[2].write_bytes(shards[2].read_bytes()[:100])
    first = load_file(shards[0])
    save_file({"digests": first["digests"], "embeddings": first["embeddings"][:10]}, shards[0])
    with caplog.at_level(logging.WARNING, logger="recsys.cache_files"):
        again = cached_embeddings(tmp_path, fingerprint, texts, encode, shard_texts=50)
    assert encoded[3:] == [50, 20]  # the two damaged shards' texts, not the intact one's
    assert torch.equal(again, expected)
    assert f"Cannot read the cache {shards[2]} (SafetensorError: " in caplog.text
    assert f"Cannot read the cache {shards[0]} (IndexError: " in caplog.text
    caplog.clear()
    cached_embeddings(tmp_path, fingerprint, texts, encode, shard_texts=50)
    assert encoded[5:] == [] and "Cannot read" not in caplog.text
