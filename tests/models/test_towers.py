import numpy as np
import pytest
import torch

from recsys.data.tokenization import TokenizedTexts
from recsys.models.item_tower import ItemTower
from recsys.models.scoring_head import ScoringHead
from recsys.models.text_encoder import TextEncoder
from recsys.models.user_tower import UserTower

TOKENS = TokenizedTexts(ids=np.array([101, 2000, 2001, 102, 101, 3000, 102, 101, 4000, 4001, 4002, 102]),
                        offsets=np.array([0, 4, 7, 12]))


def item_tower(config, **kwargs) -> ItemTower:
    torch.manual_seed(0)
    return ItemTower(TextEncoder(config=config, trainable_layers=1, bf16=False), num_items=3, dim=8, **kwargs)


def test_item_vectors_have_unit_norm_and_use_the_catalog_cache(tiny_bert_config):
    tower = item_tower(tiny_bert_config).eval()
    ids, mask = TOKENS.pad([0, 1, 2])
    from_tokens = tower(torch.arange(3), ids, mask)
    assert from_tokens.shape == (3, 8)
    assert torch.allclose(from_tokens.norm(dim=1), torch.ones(3))
    tower.attach_catalog(TOKENS)
    from_cache = tower(torch.tensor([2, 0]))
    assert torch.nn.functional.cosine_similarity(from_cache, from_tokens[[2, 0]]).min() > 0.99


def test_item_tower_asks_for_tokens_with_their_mask_or_an_attached_catalog(tiny_bert_config):
    tower = item_tower(tiny_bert_config).eval()
    ids, _ = TOKENS.pad([0, 1])
    for tokens in ((None, None), (ids, None)):
        with pytest.raises(ValueError, match="needs token ids and their attention mask, or catalog item indices"):
            tower(torch.arange(2), *tokens)


def test_id_dropout_leaves_text_alone_for_cold_items(tiny_bert_config):
    tiny_bert_config.hidden_dropout_prob = tiny_bert_config.attention_probs_dropout_prob = 0.0
    tower = item_tower(tiny_bert_config, id_dropout=0.5)
    with torch.no_grad():
        tower.id_embedding.weight.fill_(5.0)
    tower.attach_catalog(TOKENS)
    items = torch.arange(3).repeat(200)
    text_only = tower(None, *TOKENS.pad(items.tolist()))
    tower.train()
    dropped = torch.isclose(tower(items), text_only, atol=0.05).all(dim=1).float().mean().item()
    assert 0.4 < dropped < 0.6  # ids dropped for about half the items in training
    tower.eval()
    assert not torch.isclose(tower(items), text_only, atol=0.05).all(dim=1).any()  # warm items use them


def test_id_dropout_of_one_builds_no_id_table(tiny_bert_config):
    tower = item_tower(tiny_bert_config, id_dropout=1.0).eval()
    assert tower.id_embedding is None  # no table that only inference would add
    tokens = TOKENS.pad([0, 1, 2])
    assert torch.equal(tower(torch.arange(3), *tokens), tower(None, *tokens))  # warm items: text alone


def user_inputs(batch=2, history=3, text_dim=16):
    torch.manual_seed(1)
    return dict(
        review_text=torch.randn(batch, history, text_dim), item_text=torch.randn(batch, history, text_dim),
        items=torch.tensor([[0, 1, 2], [2, 0, 0]]), ratings=torch.tensor([[5.0, 4.0, 1.0], [3.0, 0.0, 0.0]]),
        mask=torch.tensor([[True, True, True], [True, False, False]]),
    )


def test_user_vectors_ignore_masked_entries_and_have_unit_norm():
    for pooling in ("attention", "transformer", "mean"):
        torch.manual_seed(0)
        tower = UserTower(text_dim=16, num_items=3, dim=8, pooling=pooling).eval()
        inputs = user_inputs()
        out = tower(**inputs)
        assert out.shape == (2, 8) and torch.allclose(out.norm(dim=1), torch.ones(2))
        changed = {**inputs, "review_text": inputs["review_text"].clone()}
        changed["review_text"][1, 1:] = 100.0  # padding of user 1
        assert torch.allclose(tower(**changed), out, atol=1e-6), pooling
        changed["review_text"][0, 0] = 100.0  # a real entry of user 0
        assert not torch.allclose(tower(**changed)[0], out[0]), pooling


def test_empty_history_gives_the_learned_default():
    tower = UserTower(text_dim=16, num_items=3, dim=8, pooling="transformer").eval()
    inputs = user_inputs()
    inputs["mask"] = torch.zeros(2, 3, dtype=torch.bool)
    out = tower(**inputs)
    assert torch.isfinite(out).all() and torch.allclose(out[0], out[1])


def test_head_rating_in_range_and_prior():
    head = ScoringHead(dim=8).eval()
    head.set_rating_prior(4.5)
    with torch.no_grad():
        head.mlp[-1].weight.zero_()
    rating, like = head(torch.randn(5, 8), torch.randn(5, 8))
    assert torch.allclose(rating, torch.full((5,), 4.5), atol=1e-5)
    head = ScoringHead(dim=8)
    rating, _ = head(100 * torch.randn(50, 8), 100 * torch.randn(50, 8))
    assert rating.min() >= 1.0 and rating.max() <= 5.0
