"""Serving text backends: fp32/bf16/int8/ONNX agree with the encoder's pretrained path, and an
export made with export.onnx / export.quantize serves with its backend."""

from __future__ import annotations

import json

import pytest
import torch

from recsys.export import write_export
from recsys.export.writer import ServingOptions
from recsys.models.text_encoder import TextEncoder
from recsys.serving.backend_names import ONNX_FILE
from recsys.serving.recommender import Recommender, ReviewInput
from recsys.serving.text_backends import build_text_backend, export_onnx, quantize_int8


@pytest.fixture(scope="module")
def encoder():
    from transformers import BertConfig

    from tests.conftest import TINY_BERT

    torch.manual_seed(0)
    return TextEncoder(config=BertConfig(**TINY_BERT), trainable_layers=1, bf16=False).eval()


def tokens(batch: int = 3, length: int = 12):
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 20000, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    return ids, mask


def test_fp32_backend_is_the_encoders_pretrained_path(encoder):
    ids, mask = tokens()
    expected = encoder.forward_pretrained(ids, mask)
    assert torch.allclose(build_text_backend("fp32", encoder)(ids, mask), expected, atol=1e-5)
    # Padding does not leak: a padded row equals the same text alone.
    alone = build_text_backend("fp32", encoder)(ids[2:3, :3], mask[2:3, :3])
    assert torch.allclose(alone, expected[2:3], atol=1e-5)


def test_bf16_and_int8_stay_close_to_fp32(encoder):
    ids, mask = tokens()
    reference = build_text_backend("fp32", encoder)(ids, mask)
    for kind, tolerance in (("bf16", 0.05), ("int8", 0.1)):
        got = build_text_backend(kind, encoder)(ids, mask)
        cosine = torch.nn.functional.cosine_similarity(got, reference)
        assert cosine.min() > 0.99, (kind, cosine)
        assert (got - reference).abs().max() < tolerance * reference.abs().max(), kind
        assert not torch.equal(got, reference), kind  # it did run in another precision
    quantized = quantize_int8(encoder)
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    kinds = {type(m) for m in quantized.modules()}
    assert DynamicInt8Linear in kinds and torch.nn.Linear not in kinds


def test_onnx_matches_fp32_at_any_batch_and_length(encoder, tmp_path):
    pytest.importorskip("onnxruntime")
    path = export_onnx(encoder, tmp_path / ONNX_FILE)
    backend = build_text_backend("onnx", encoder, path)
    fp32 = build_text_backend("fp32", encoder)
    for batch, length in ((3, 12), (1, 40), (7, 5)):
        ids, mask = tokens(max(batch, 3), length)
        ids, mask = ids[:batch], mask[:batch]
        assert torch.allclose(backend(ids, mask), fp32(ids, mask), atol=1e-4), (batch, length)


def test_unknown_backend_and_quantize_values_say_what_is_allowed(encoder, tmp_path):
    with pytest.raises(ValueError, match="fp32, bf16, int8, onnx"):
        build_text_backend("fp16", encoder)
    with pytest.raises(ValueError, match="null or int8"):
        ServingOptions(quantize="int4")
    with pytest.raises(FileNotFoundError, match="export.onnx=true"):
        build_text_backend("onnx", encoder, tmp_path / "missing.onnx")


@pytest.mark.parametrize(("options", "backend"), [(ServingOptions(onnx=True), "onnx"),
                                                  (ServingOptions(quantize="int8"), "int8")])
def test_export_records_and_serves_its_backend(tiny_export, tmp_path, options, backend):
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    _, module, datamodule = tiny_export
    config = {"model": {"net": {"text": {"trainable_layers": 1, "bf16": False}, "dim": 16, "head": {"hidden": 32},
                                "user": {"pooling": "attention"}}},
              "data": {"max_reviews": 4, "review_max_tokens": 32}}
    out = write_export(module.eval(), datamodule, tmp_path / "export", config, serving=options)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["serving"]["text_backend"] == backend
    assert (ONNX_FILE in manifest["files"]) == (backend == "onnx")
    served = Recommender.from_export(out)
    reference = Recommender.from_export(out, text_backend="fp32")
    assert served.text_backend == backend and reference.text_backend == "fp32"
    query = "user 3 writes review 1 about item 5"
    ours = [r.item_id for r in served.recommend_query(query, k=5)]
    theirs = [r.item_id for r in reference.recommend_query(query, k=5)]
    assert len(set(ours) & set(theirs)) >= 4
    reviews = [ReviewInput("user 1 writes review 0 about item 1", str(datamodule.data.item_ids[1]), 5.0)]
    assert len(served.recommend_reviews(reviews, k=3)) == 3
