"""Speed against the machine's limits: training step vs a naive re-encoding loop, encoder
throughput in fp32 and bf16, achieved FLOP/s against a measured bf16 matmul rate."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from recsys.data.batches import PairBatch
from recsys.data.datamodule import ReviewDataModule
from recsys.data.tokenization import TokenizedTexts
from recsys.models.text_encoder import TextEncoder
from recsys.training.module import TwoTowerModule


def matmul_flops_per_s(dtype: torch.dtype = torch.bfloat16, size: int = 2048, repeats: int = 10) -> float:
    """Measured FLOP/s of a ``size`` x ``size`` matmul (the machine's practical peak)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started)


@dataclass
class EncoderSpeed:
    """One row of the encoder table: throughput at one sequence length and precision."""

    seq_len: int
    dtype: str
    sequences_per_s: float
    flops_per_s: float


@torch.no_grad()
def encoder_speed(encoder: TextEncoder, seq_len: int, bf16: bool, batch: int = 128, repeats: int = 3) -> EncoderSpeed:
    """Inference sequences/s of the whole encoder on [batch, seq_len] tokens, and its FLOP/s."""
    encoder.eval()
    encoder.bf16 = bf16
    ids = torch.randint(1000, 20000, (batch, seq_len))
    mask = torch.ones(batch, seq_len, dtype=torch.long)
    encoder.forward_pretrained(ids, mask)
    started = time.perf_counter()
    for _ in range(repeats):
        encoder.forward_pretrained(ids, mask)
    seconds = (time.perf_counter() - started) / repeats
    flops = encoder.estimate_flops(mask, encoder.num_layers, backward=False)
    return EncoderSpeed(seq_len, "bf16" if bf16 else "fp32", batch / seconds, flops / seconds)


# Profiler operator names -> what they are, for the time breakdown.
OPERATOR_GROUPS = {
    "matrix multiplications (linear layers)": ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul"),
    "attention (fused SDPA kernel)": ("aten::_scaled_dot_product_flash_attention_for_cpu",),
    "autocast casts (fp32 weights to bf16)": ("aten::copy_", "aten::_to_copy"),
    "element-wise (add, GELU, LayerNorm, mul)": ("aten::add", "aten::gelu", "aten::native_layer_norm", "aten::mul"),
    "embedding lookups": ("aten::index_select", "aten::embedding"),
}


@torch.no_grad()
def encoder_time_breakdown(encoder: TextEncoder, seq_len: int, batch: int = 128) -> dict[str, float]:
    """Share of the encoder's CPU time per operator group (``OPERATOR_GROUPS``, rest ``other``), from
    one profiled bf16 forward pass."""
    from torch.profiler import ProfilerActivity, profile

    encoder.eval()
    encoder.bf16 = True
    ids = torch.randint(1000, 20000, (batch, seq_len))
    mask = torch.ones(batch, seq_len, dtype=torch.long)
    encoder.forward_pretrained(ids, mask)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        encoder.forward_pretrained(ids, mask)
    self_time = {event.key: event.self_cpu_time_total for event in profiler.key_averages()}
    total = sum(self_time.values())
    shares = {group: sum(self_time.get(op, 0.0) for op in ops) / total for group, ops in OPERATOR_GROUPS.items()}
    shares["other"] = 1.0 - sum(shares.values())
    return shares


def _scatter(rows: torch.Tensor, values: torch.Tensor, size: int) -> torch.Tensor:
    full = torch.zeros(size, values.shape[-1])
    full[rows] = values
    return full


@contextlib.contextmanager
def naive_texts(module: TwoTowerModule, batch: PairBatch, item_tokens: TokenizedTexts,
                review_tokens: TokenizedTexts) -> Iterator[None]:
    """Within this context the module reads no cached text: every text of ``batch`` (history
    reviews, history items' and batch items' documents) was just encoded with the full encoder."""
    net = module.net
    encoder = net.encoder
    reviews = torch.unique(batch.history_reviews[batch.history_mask])
    items = torch.unique(torch.cat([batch.history_items[batch.history_mask], batch.batch_items]))
    saved = (net.review_text, net.item_text, net.item_tower.prefix_cache, net.item_tower.frozen_text,
             net.item_tower.catalog_tokens)
    review_text = encoder.forward_pretrained(*review_tokens.pad(reviews.numpy()))
    item_text = encoder.forward_pretrained(*item_tokens.pad(items.numpy()))
    net.review_text = _scatter(reviews, review_text, len(review_tokens))
    net.item_text = _scatter(items, item_text, len(item_tokens))
    net.item_tower.prefix_cache = None
    net.item_tower.frozen_text = torch.empty(0)
    net.item_tower.catalog_tokens = item_tokens  # the item tower runs the full encoder on tokens
    try:
        yield
    finally:
        (net.review_text, net.item_text, net.item_tower.prefix_cache, net.item_tower.frozen_text,
         net.item_tower.catalog_tokens) = saved


def training_speed(module: TwoTowerModule, datamodule: ReviewDataModule, batches: int = 4) -> dict[str, float]:
    """samples/s of ours vs the naive loop (forward, backward, optimizer step), on the same
    batches, and the loss difference of the two on the first batch (equal by construction)."""
    collate = datamodule.collator("train")
    size = datamodule.batch_size
    rng = np.random.default_rng(0)
    order = rng.permutation(len(datamodule.prepared.pairs["train"]))
    batch_list = [collate(order[i * size : (i + 1) * size].tolist()) for i in range(batches)]
    parameters = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=0.0)  # lr 0: both loops see the same weights

    def step(batch: PairBatch, naive: bool) -> float:
        context = naive_texts(module, batch, datamodule.item_tokens, datamodule.review_tokens) if naive \
            else contextlib.nullcontext()
        with context:
            loss = module.model_step(batch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return float(loss.detach())

    module.eval()  # no dropout: the two loops must compute the same loss
    with torch.no_grad():
        ours_loss = float(module.model_step(batch_list[0])["loss"])
        with naive_texts(module, batch_list[0], datamodule.item_tokens, datamodule.review_tokens):
            naive_loss = float(module.model_step(batch_list[0])["loss"])
    result = {"loss_ours": ours_loss, "loss_naive": naive_loss}
    for name, naive in (("ours", False), ("naive", True)):
        module.train()
        step(batch_list[0], naive)  # warm-up
        started = time.perf_counter()
        for batch in batch_list:
            step(batch, naive)
        result[f"samples_per_s_{name}"] = batches * size / (time.perf_counter() - started)
    return result
