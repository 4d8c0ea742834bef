import numpy as np
import pytest
import torch
from transformers.utils import logging as hf_logging

from recsys.data.tokenization import TokenizedTexts
from recsys.models.text_encoder import PrefixCache, TextEncoder, encode_in_length_order, mean_pool

TOKENS = TokenizedTexts(ids=np.array([101, 2000, 2001, 2002, 102, 101, 3000, 102, 101, 102]),
                        offsets=np.array([0, 5, 8, 10]))


def encoder(config, layers: int, bf16: bool = False) -> TextEncoder:
    torch.manual_seed(0)
    return TextEncoder(config=config, trainable_layers=layers, bf16=bf16)


def grads_after_backward(model: TextEncoder) -> dict[str, bool]:
    ids, mask = TOKENS.pad([0, 1, 2])
    model(ids, mask).sum().backward()
    return {n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in model.bert.named_parameters()}


def test_only_the_top_layers_get_gradients(tiny_bert_config):
    model = encoder(tiny_bert_config, layers=1)
    grads = grads_after_backward(model)
    assert all(has for name, has in grads.items() if name.startswith("encoder.layer.2."))
    assert not any(has for name, has in grads.items() if not name.startswith("encoder.layer.2."))
    assert all(not p.requires_grad for p in model.pretrained_top.parameters())


@pytest.mark.parametrize(("layers", "trainable"), [(0, 0), (2, 2), (-1, 3)])
def test_trainable_layers_setting(tiny_bert_config, layers, trainable):
    model = encoder(tiny_bert_config, layers=layers)
    assert model.trainable_layers == trainable
    embeddings_train = any(p.requires_grad for p in model.bert.embeddings.parameters())
    assert embeddings_train == (layers == -1)
    if layers == 0:
        assert not any(p.requires_grad for p in model.parameters())


def test_bad_trainable_layers_says_what_is_allowed(tiny_bert_config):
    with pytest.raises(ValueError, match=r"-1 \(all\), 0 \(frozen\) or 1..3"):
        encoder(tiny_bert_config, layers=7)


def test_mean_pooling_ignores_padding(tiny_bert_config):
    model = encoder(tiny_bert_config, layers=1).eval()
    ids, mask = TOKENS.pad([0, 1, 2])
    together = model(ids, mask)
    for row in range(3):
        alone = model(*TOKENS.pad([row]))
        assert torch.allclose(together[row], alone[0], atol=1e-5)
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]


def test_encoding_in_padded_length_buckets_matches_each_text_alone(tiny_bert_config):
    model = encoder(tiny_bert_config, layers=1).eval()
    with torch.no_grad():
        alone = torch.cat([model(*TOKENS.pad([row])) for row in range(len(TOKENS))])
    seen_widths = []

    def recording(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        seen_widths.append(ids.shape[1])
        return model(ids, mask)

    bucketed = encode_in_length_order(recording, TOKENS, batch_size=2, pad_multiple=4)
    assert seen_widths == [4, 8]  # rows sorted by length (2, 3 | 5 tokens), widths rounded up
    assert torch.allclose(bucketed, alone, atol=1e-5)


def test_prefix_cache_gives_the_full_forward(tiny_bert_config):
    model = encoder(tiny_bert_config, layers=1).eval()
    cache = PrefixCache(model, TOKENS)
    states, mask = cache.gather(torch.tensor([2, 0]))
    assert states.shape[1] == 5  # cut to the longest of the rows asked for
    from_cache = mean_pool(model.states_from_prefix(states.float(), mask).float(), mask)
    full = model(*TOKENS.pad([2, 0]))
    assert torch.allclose(from_cache, full, atol=0.05)  # the cache stores bfloat16
    assert torch.allclose(from_cache, full, rtol=0.05, atol=0.02)


def test_pretrained_embeddings_do_not_move_with_fine_tuning(tiny_bert_config):
    model = encoder(tiny_bert_config, layers=2)
    before = model.encode(TOKENS, pretrained=True)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    ids, mask = TOKENS.pad([0, 1, 2])
    model(ids, mask).pow(2).sum().backward()
    optimizer.step()
    assert torch.allclose(model.encode(TOKENS, pretrained=True), before)
    assert not torch.allclose(model.encode(TOKENS), before, atol=1e-3)


def test_flops_estimate_hand_computed(tiny_bert_config):
    model = encoder(tiny_bert_config, layers=1)
    mask = torch.ones(2, 10)
    # Per layer and sequence: 2*10*(4*32*32 + 2*32*64) + 4*10*10*32 = 2*10*8192 + 12800 = 176640.
    assert model.estimate_flops(mask, layers=1, backward=False) == 2 * 176_640
    assert model.estimate_flops(mask, layers=2, backward=True) == 3 * 2 * 2 * 176_640


def test_bf16_autocast_is_close_to_fp32(tiny_bert_config):
    fp32 = encoder(tiny_bert_config, layers=1, bf16=False).eval()
    bf16 = encoder(tiny_bert_config, layers=1, bf16=True).eval()
    ids, mask = TOKENS.pad([0, 1])
    a, b = fp32(ids, mask), bf16(ids, mask)
    assert b.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.99


@pytest.mark.parametrize("bars_before", [True, False])
def test_loading_the_bundled_encoder_is_quiet_and_restores_transformers_settings(capfd, bars_before):
    verbosity = hf_logging.get_verbosity()
    (hf_logging.enable_progress_bar if bars_before else hf_logging.disable_progress_bar)()
    try:
        encoder = TextEncoder(trainable_layers=0)
        captured = capfd.readouterr()
        assert encoder.hidden_size == 384
        assert "Loading weights" not in captured.err + captured.out
        assert hf_logging.is_progress_bar_enabled() is bars_before
        assert hf_logging.get_verbosity() == verbosity
    finally:
        hf_logging.enable_progress_bar()


@pytest.mark.parametrize("stored", [torch.float16, torch.bfloat16])
def test_a_half_precision_checkpoint_loads_as_float32_weights(tiny_bert_config, tmp_path, stored):
    # transformers keeps a checkpoint's own dtype by default; the optimiser needs float32 weights.
    from transformers import BertModel

    torch.manual_seed(0)
    BertModel(tiny_bert_config, add_pooling_layer=False).to(stored).save_pretrained(tmp_path)
    loaded = TextEncoder(pretrained_path=tmp_path, trainable_layers=1, bf16=False)
    assert {p.dtype for p in loaded.bert.parameters()} == {torch.float32}
    ids, mask = TOKENS.pad([0, 1, 2])
    assert loaded(ids, mask).dtype == torch.float32


def dropout_modes(model: TextEncoder) -> list[bool]:
    return [m.training for m in model.bert.modules() if isinstance(m, torch.nn.Dropout)]


def test_a_loaded_encoder_trains_its_fine_tuned_layers_in_train_mode(tiny_bert_config, tmp_path):
    # from_pretrained returns eval mode; the mode must not depend on whether texts were encoded
    # first (a cold embedding cache) or not (a warm one), or reruns of one seed train differently.
    from transformers import BertModel

    BertModel(tiny_bert_config, add_pooling_layer=False).save_pretrained(tmp_path)
    loaded = TextEncoder(pretrained_path=tmp_path, trainable_layers=1, bf16=False)
    built = encoder(tiny_bert_config, layers=1)
    assert dropout_modes(loaded) == dropout_modes(built)
    top = [m.training for m in loaded.bert.encoder.layer[2].modules() if isinstance(m, torch.nn.Dropout)]
    assert top and all(top)
    below = [m.training for m in loaded.bert.encoder.layer[:2].modules() if isinstance(m, torch.nn.Dropout)]
    assert below and not any(below)
    before = dropout_modes(loaded)
    loaded.encode(TOKENS)
    assert dropout_modes(loaded) == before


def test_token_ids_beyond_the_vocabulary_name_the_two_settings_that_disagree(tiny_bert_config):
    # A tokenizer of another model: the embedding lookup failed with a bare "index out of range".
    model = encoder(tiny_bert_config, layers=1)
    beyond = TokenizedTexts(ids=np.array([101, 30522, 102]), offsets=np.array([0, 3]))
    message = (r"the texts hold token id 30522, beyond the encoder's vocabulary of 30522 tokens: the tokenizer "
               r"\(data.tokenizer_path\) is not the encoder's \(model.text.pretrained_path\)")
    with pytest.raises(ValueError, match=message):
        model.encode(beyond)
    with pytest.raises(ValueError, match=message):
        PrefixCache(model, beyond)
    model.check_tokens(TOKENS)  # the last id of the vocabulary and below are fine
    model.check_tokens(TokenizedTexts(ids=np.array([30521]), offsets=np.array([0, 1])))
