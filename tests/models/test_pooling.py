import pytest
import torch

from recsys.models.item_tower import ItemTower
from recsys.models.pooling import AttentionPooling
from recsys.models.text_encoder import TextEncoder, mean_pool
from tests.models.test_towers import TOKENS

MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]])


def test_untrained_attention_pooling_is_the_mean_and_ignores_padding():
    torch.manual_seed(0)
    states = torch.randn(3, 4, 6)
    pooling = AttentionPooling(6)
    pooled = pooling(states, MASK)
    assert torch.allclose(pooled, mean_pool(states, MASK), atol=1e-6)
    assert torch.equal(pooled[2], torch.zeros(6))  # a text without tokens
    padded = states.clone()
    padded[0, 3] = padded[1, 2:] = 100.0
    assert torch.allclose(pooling(padded, MASK), pooled, atol=1e-6)


def test_attention_pooling_weighs_tokens_by_its_learned_score():
    states = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    pooling = AttentionPooling(2)
    with torch.no_grad():
        pooling.score.weight.copy_(torch.tensor([[2.0, 0.0]]))  # scores 2, 0 (third token is padding)
    weight = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    expected = weight[0] * states[0, 0] + weight[1] * states[0, 1]
    assert torch.allclose(pooling(states, torch.tensor([[1, 1, 0]]))[0], expected, atol=1e-6)


def test_bfloat16_states_pool_like_float32_ones():
    torch.manual_seed(0)
    states = torch.randn(3, 4, 6)
    pooling = AttentionPooling(6)
    torch.nn.init.normal_(pooling.score.weight)
    low = pooling(states.to(torch.bfloat16), MASK)
    assert low.dtype == torch.float32
    assert torch.allclose(low, pooling(states, MASK), atol=0.05)


def attention_tower(config, trainable_layers: int) -> ItemTower:
    torch.manual_seed(0)
    encoder = TextEncoder(config=config, trainable_layers=trainable_layers, bf16=False)
    return ItemTower(encoder, num_items=3, dim=8, id_embedding=False, pooling="attention").eval()


@pytest.mark.parametrize("trainable_layers", [0, 1])
def test_item_tower_with_attention_pooling_starts_as_mean_pooling(tiny_bert_config, trainable_layers):
    tower = attention_tower(tiny_bert_config, trainable_layers)
    torch.manual_seed(0)
    mean_tower = ItemTower(TextEncoder(config=tiny_bert_config, trainable_layers=trainable_layers, bf16=False),
                           num_items=3, dim=8, id_embedding=False).eval()
    mean_tower.load_state_dict(tower.state_dict(), strict=False)
    ids, mask = TOKENS.pad([0, 1, 2])
    assert torch.allclose(tower(None, ids, mask), mean_tower(None, ids, mask), atol=1e-5)


@pytest.mark.parametrize("trainable_layers", [0, 1])
def test_catalog_cache_and_cold_tokens_give_the_same_item_vectors(tiny_bert_config, trainable_layers):
    tower = attention_tower(tiny_bert_config, trainable_layers)
    torch.nn.init.normal_(tower.attention_pooling.score.weight)
    ids, mask = TOKENS.pad([0, 1, 2])
    cold = tower(None, ids, mask)
    tower.attach_catalog(TOKENS)
    assert tower.prefix_cache is not None and not tower.frozen_text.numel()
    # The cache holds bfloat16 states: equal up to its rounding.
    assert torch.nn.functional.cosine_similarity(tower(torch.tensor([2, 0, 1])), cold[[2, 0, 1]]).min() > 0.999


def test_only_the_pooling_learns_when_the_encoder_is_frozen(tiny_bert_config):
    tower = attention_tower(tiny_bert_config, trainable_layers=0).train()
    tower.attach_catalog(TOKENS)
    tower(torch.arange(3)).sum().backward()
    assert tower.attention_pooling.score.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in tower.encoder.parameters())


def test_unknown_pooling_is_refused(tiny_bert_config):
    with pytest.raises(ValueError, match="model.net.item.pooling='max'.*mean, attention"):
        ItemTower(TextEncoder(config=tiny_bert_config, trainable_layers=0), num_items=3, pooling="max")
