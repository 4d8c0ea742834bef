"""``review_encoder=finetune``: the user tower reads its review texts through the encoder being
fine-tuned, in training and in evaluation alike."""

import numpy as np
import pytest
import torch

from recsys.models.two_tower import TwoTowerModel
from tests.conftest import TINY_BERT
from tests.training.test_module import tiny_setup, trainer


def tuned_setup(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=1, review_encoder="finetune")
    module.attach(dm.catalog())
    users = np.arange(dm.num_users)
    return dm, module, dm.history_batch(users)


def users_through(net: TwoTowerModel, review_text: torch.Tensor, batch) -> torch.Tensor:
    """User vectors of ``batch`` with the history's reviews embedded as ``review_text`` [reviews, H]."""
    return net.user_tower(review_text[batch.history_reviews], net.item_text[batch.history_items],
                          batch.history_items, batch.history_ratings, batch.history_mask)


def perturb_the_trainable_layer(net: TwoTowerModel) -> None:
    with torch.no_grad():
        for parameter in net.encoder.bert.encoder.layer[-1].parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))


def test_finetune_needs_a_trainable_encoder():
    with pytest.raises(ValueError, match="review_encoder=finetune .* model.text.trainable_layers=0 freezes it"):
        TwoTowerModel(5, text={"trainable_layers": 0, "bf16": False}, user={"review_encoder": "finetune"},
                      encoder_config=dict(TINY_BERT))
    with pytest.raises(ValueError, match="review_encoder='live' is not allowed; use one of: frozen, finetune"):
        TwoTowerModel(5, text={"bf16": False}, user={"review_encoder": "live"}, encoder_config=dict(TINY_BERT))


def test_training_sends_the_user_towers_gradient_into_the_encoder(tiny_dataset, tmp_path):
    dm, module, batch = tuned_setup(tiny_dataset, tmp_path)
    for review_encoder, reaches in (("frozen", False), ("finetune", True)):
        net = module.net.train()
        net.review_encoder = review_encoder
        net.zero_grad()
        net.user_vectors(batch).sum().backward()
        trainable = [p for p in net.encoder.parameters() if p.requires_grad]
        assert trainable and all((p.grad is not None and p.grad.abs().sum() > 0) == reaches for p in trainable)


def test_evaluation_reads_the_reviews_through_the_encoder_as_it_is_now(tiny_dataset, tmp_path):
    dm, module, batch = tuned_setup(tiny_dataset, tmp_path)
    net = module.net.eval()
    perturb_the_trainable_layer(net)  # as fine-tuning would: the encoder is no longer the pretrained one
    net.tuned_review_text_stale = True
    with torch.no_grad():
        vectors = net.user_vectors(batch)
        now = net.encoder.encode(dm.catalog().review_tokens)
        torch.testing.assert_close(vectors, users_through(net, now, batch))
        assert not torch.allclose(vectors, users_through(net, net.review_text, batch), atol=1e-3)
        assert not torch.allclose(now, net.review_text, atol=1e-3)


def test_the_evaluation_cache_is_renewed_after_a_training_step_or_a_load(tiny_dataset, tmp_path):
    dm, module, batch = tuned_setup(tiny_dataset, tmp_path)
    net = module.net
    reviews = dm.catalog().review_tokens
    with torch.no_grad():
        first = net.eval().user_vectors(batch)
    # A training step through the user tower, then an optimiser update of the encoder.
    optimizer = torch.optim.SGD([p for p in net.encoder.parameters() if p.requires_grad], lr=1.0)
    (net.train().user_vectors(batch) * torch.randn(len(first), first.shape[1])).sum().backward()
    optimizer.step()
    with torch.no_grad():
        after_step = net.eval().user_vectors(batch)
        torch.testing.assert_close(after_step, users_through(net, net.encoder.encode(reviews), batch))
    assert not torch.allclose(first, after_step, atol=1e-4)
    # Loading other weights (a checkpoint) renews it too.
    layer = f"item_tower.encoder.bert.encoder.layer.{net.encoder.num_layers - 1}."
    other = {k: v + 0.05 * torch.randn_like(v) if k.startswith(layer) and v.is_floating_point() else v
             for k, v in net.state_dict().items()}
    net.load_state_dict(other)
    with torch.no_grad():
        loaded = net.user_vectors(batch)
        torch.testing.assert_close(loaded, users_through(net, net.encoder.encode(reviews), batch))
    assert not torch.allclose(loaded, after_step, atol=1e-4)


def test_a_run_validates_and_tests_with_the_encoder_it_has_trained(tiny_dataset, tmp_path):
    dm, module, batch = tuned_setup(tiny_dataset, tmp_path)
    pretrained = module.net.review_text.clone()
    fit = trainer(epochs=3)
    fit.fit(module, dm)
    net = module.net.eval()
    with torch.no_grad():
        now = net.encoder.encode(dm.catalog().review_tokens)
    # The last validation (after the last epoch) embedded the reviews with the trained encoder.
    assert not net.tuned_review_text_stale
    torch.testing.assert_close(net.tuned_review_text, now)
    assert not torch.allclose(now, pretrained, atol=1e-3)
    metrics = fit.test(module, dm, verbose=False)[0]
    assert 0.0 <= metrics["test/recall@5"] <= 1.0 and metrics["test/rmse"] < 4.0
