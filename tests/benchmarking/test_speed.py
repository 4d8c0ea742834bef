"""Speed-benchmark helpers on a tiny random encoder: the naive loop computes the same loss as the
real training step, and the time breakdown accounts for the whole forward pass."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig

from recsys.benchmarking.speed import OPERATOR_GROUPS, encoder_speed, encoder_time_breakdown, matmul_flops_per_s
from recsys.models.text_encoder import TextEncoder
from tests.conftest import TINY_BERT


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    torch.manual_seed(0)
    return TextEncoder(config=BertConfig(**TINY_BERT), trainable_layers=0)


def test_time_breakdown_shares_sum_to_one_and_find_the_matmuls(encoder):
    shares = encoder_time_breakdown(encoder, seq_len=16, batch=8)
    assert set(shares) == {*OPERATOR_GROUPS, "other"}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert all(0.0 <= v <= 1.0 for k, v in shares.items() if k != "other")
    # A 32-wide model is overhead-bound, so only ask that the groups are found, not their sizes.
    assert shares["matrix multiplications (linear layers)"] > 0.0 and shares["other"] < 0.9


def test_encoder_speed_reports_flops_consistent_with_the_estimate(encoder):
    speed = encoder_speed(encoder, seq_len=16, bf16=False, batch=8, repeats=2)
    mask = torch.ones(8, 16, dtype=torch.long)
    flops_per_batch = encoder.estimate_flops(mask, encoder.num_layers, backward=False)
    assert speed.flops_per_s == pytest.approx(flops_per_batch * speed.sequences_per_s / 8, rel=1e-6)
    assert speed.dtype == "fp32" and matmul_flops_per_s(torch.float32, size=128, repeats=2) > 1e8


def test_naive_loop_computes_the_training_steps_loss_from_fresh_encodings(tiny_dataset, tmp_path):
    from recsys.benchmarking.speed import naive_texts, training_speed
    from tests.training.test_module import tiny_setup

    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=1)
    module.attach(dm.catalog())
    net = module.net
    batch = dm.collator("train")(list(range(8)))
    cached = (net.review_text, net.item_tower.prefix_cache)
    with naive_texts(module, batch, dm.item_tokens, dm.review_tokens):
        # No cache is read: reviews outside the batch's histories are not even encoded.
        assert net.item_tower.prefix_cache is None
        outside = torch.ones(len(net.review_text), dtype=torch.bool)
        outside[batch.history_reviews[batch.history_mask]] = False
        assert outside.any() and (net.review_text[outside] == 0).all()
    assert (net.review_text, net.item_tower.prefix_cache) == cached  # restored
    result = training_speed(module, dm, batches=1)
    # Same texts and weights, batched with other padding: equal up to float32 rounding.
    assert result["loss_naive"] == pytest.approx(result["loss_ours"], rel=1e-4)
    assert result["samples_per_s_ours"] > 0 and result["samples_per_s_naive"] > 0


def test_the_report_tables_each_setting_and_the_ratio_of_its_own_rows(encoder):
    from recsys.benchmarking.speed_report import encoder_lines

    lines = encoder_lines(encoder, "tiny", seq_lens=(8, 16), batch=4, matmul_size=128)
    rows = [line for line in lines if line.startswith("| seq ")]
    assert [row.split(" | ")[0] for row in rows] == ["| seq 8, fp32", "| seq 8, bf16", "| seq 16, fp32",
                                                     "| seq 16, bf16"]
    fp32, bf16 = (float(row.split(" | ")[1].replace(",", "")) for row in rows[:2])
    (ratio_line,) = [line for line in lines if "bf16 vs fp32 encoder at seq 8:" in line]
    # The ratio is of the measured speeds, which the rows show rounded to whole sequences/s (on a busy
    # machine a tiny encoder runs at tens a second, where that rounding alone moves the ratio by 5%),
    # and it is printed to two decimals: it lies within what those roundings allow.
    ratio = float(ratio_line.rsplit(": ", 1)[1].rstrip("x."))
    assert (bf16 - 0.5) / (fp32 + 0.5) - 0.005 <= ratio <= (bf16 + 0.5) / (fp32 - 0.5) + 0.005
    shares = [line for line in lines if line.endswith("% |") and not line.startswith("| seq ")]
    assert {line.split(" | ")[0][2:] for line in shares} == {*OPERATOR_GROUPS, "other"}
