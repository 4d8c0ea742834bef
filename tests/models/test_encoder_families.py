"""The encoder types that TextEncoder runs layer by layer: for each, on a small random model saved
to a folder, the same vectors as the model's own forward pass; other types refused by name."""

import numpy as np
import pytest
import torch

from recsys.data.tokenization import TokenizedTexts
from recsys.models.encoder_families import inner_size
from recsys.models.text_encoder import TextEncoder, mean_pool

TOKENS = TokenizedTexts(ids=np.array([101, 2000, 2001, 2002, 102, 101, 3000, 102, 101, 102]),
                        offsets=np.array([0, 5, 8, 10]))


TINY_FAMILIES = {
    "bert": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64),
    "roberta": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                    max_position_embeddings=514),
    "distilbert": dict(dim=32, n_layers=3, n_heads=2, hidden_dim=64),
}
TINY_FAMILIES["xlm-roberta"] = TINY_FAMILIES["camembert"] = TINY_FAMILIES["mpnet"] = TINY_FAMILIES["roberta"]
TINY_FAMILIES["electra"] = {**TINY_FAMILIES["bert"], "embedding_size": 16}  # projected to the layers' 32


@pytest.mark.parametrize("model_type", sorted(TINY_FAMILIES))
def test_a_bert_family_folder_runs_layer_by_layer_as_its_model_does(tmp_path, model_type):
    # The encoder runs the embeddings and each layer itself (to cache the frozen prefix): its
    # output must be the Hugging Face model's own, padding included, for each layout it accepts.
    from transformers import AutoConfig, AutoModel

    from recsys.serving.text_backends import build_text_backend

    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, vocab_size=4000, **TINY_FAMILIES[model_type])
    saved = AutoModel.from_config(config)
    if model_type == "mpnet":  # a bias of the size trained ones have, so that leaving it out shows
        torch.nn.init.normal_(saved.encoder.relative_attention_bias.weight)
    saved.save_pretrained(tmp_path)
    model = TextEncoder(pretrained_path=tmp_path, trainable_layers=1, bf16=False)
    assert inner_size(model.bert.config) == 64  # the FLOP estimate's feed-forward width, whatever its name
    reference = AutoModel.from_pretrained(tmp_path).eval()
    ids, mask = TOKENS.pad([0, 1, 2])
    ids = ids % 4000
    with torch.no_grad():
        expected = mean_pool(reference(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
    model.eval()
    assert torch.allclose(model(ids, mask), expected, atol=1e-5)
    assert torch.allclose(model.forward_pretrained(ids, mask), expected, atol=1e-5)
    assert torch.allclose(build_text_backend("fp32", model)(ids, mask), expected, atol=1e-5)
    # Only the top layer trains, and the cached prefix leads to the same output.
    model.train()
    model(ids, mask).sum().backward()
    trained = {name for name, p in model.bert.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert trained and {name.split(".")[2] for name in trained} == {"2"}
    model.eval()
    prefix = model.frozen_prefix(ids, mask)
    assert torch.allclose(mean_pool(model.states_from_prefix(prefix, mask), mask), expected, atol=1e-5)
    # The pretrained fingerprint leaves out the fine-tuned layer (its cache outlives fine-tuning).
    fingerprint = model.pretrained_fingerprint()
    with torch.no_grad():
        next(model.layers[2].parameters()).add_(1.0)
    assert model.pretrained_fingerprint() == fingerprint
    # Everything trainable (-1): the embeddings too (ELECTRA's projection with them; MPNet's bias
    # table stays frozen), and the pretrained path keeps the weights as loaded.
    everything = TextEncoder(pretrained_path=tmp_path, trainable_layers=-1, bf16=False)
    frozen = {name for name, p in everything.bert.named_parameters() if not p.requires_grad}
    assert frozen == ({"encoder.relative_attention_bias.weight"} if model_type == "mpnet" else set())
    fingerprint = everything.pretrained_fingerprint()
    with torch.no_grad():  # what training may change
        for parameter in everything.bert.parameters():
            if parameter.requires_grad:
                parameter.add_(0.1 * torch.randn_like(parameter))
    everything.eval()
    assert torch.allclose(everything.forward_pretrained(ids, mask), expected, atol=1e-5)
    assert not torch.allclose(everything(ids, mask), expected, atol=1e-3)
    assert everything.pretrained_fingerprint() == fingerprint


def test_an_encoder_of_another_family_is_refused_naming_those_that_work(tmp_path):
    # ALBERT shares one layer's weights across its stack, in groups that a layer-by-layer run does not know.
    from transformers import AutoConfig, AutoModel

    from recsys.models.encoder_families import SUPPORTED_MODEL_TYPES

    assert set(TINY_FAMILIES) == set(SUPPORTED_MODEL_TYPES)  # each one accepted is run in the test above
    AutoModel.from_config(AutoConfig.for_model("albert", vocab_size=100, embedding_size=16, hidden_size=32,
                                               num_hidden_layers=2, num_attention_heads=2,
                                               intermediate_size=64)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=rf"model.text.pretrained_path={tmp_path} is a model of type 'albert', "
                       r"whose layers recsys cannot run: use an encoder of type bert, roberta, xlm-roberta, "
                       r"camembert, electra, distilbert, mpnet"):
        TextEncoder(pretrained_path=tmp_path)


@pytest.mark.parametrize(("model_type", "max_tokens"), [("bert", 40), ("roberta", 38), ("distilbert", 40)])
def test_texts_longer_than_the_positions_are_refused_and_the_longest_allowed_runs(tmp_path, model_type, max_tokens):
    # A tokenizer whose maximum length is not the model's let longer texts through, which failed in
    # the position embeddings; RoBERTa's positions start after its padding id (1), so 2 fewer.
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(model_type, vocab_size=4000, **{**TINY_FAMILIES[model_type],
                                                                  "max_position_embeddings": 40})
    AutoModel.from_config(config).save_pretrained(tmp_path)
    model = TextEncoder(pretrained_path=tmp_path, trainable_layers=1, bf16=False)
    assert model.max_tokens == max_tokens
    longest = TokenizedTexts(ids=np.arange(3, 3 + max_tokens), offsets=np.array([0, max_tokens]))
    assert model.encode(longest).shape == (1, 32)
    too_long = TokenizedTexts(ids=np.arange(3, 4 + max_tokens), offsets=np.array([0, max_tokens + 1]))
    with pytest.raises(ValueError, match=rf"the texts hold up to {max_tokens + 1} tokens, more than the encoder "
                       rf"reads \({max_tokens}, its position embeddings\): set data.item_max_tokens and "
                       rf"data.review_max_tokens to at most {max_tokens}"):
        model.encode(too_long)
