import math

import pytest
import torch
import torch.nn.functional as F

from recsys.models.losses import LossConfig, in_batch_retrieval_loss, like_loss

USERS = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
ITEMS = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=1)
SLOT = torch.tensor([0, 1])


@pytest.mark.parametrize("kind", ["bce", "softmax", "catalog_softmax"])
def test_accidental_hits_are_not_negatives(kind):
    # User 0 also has batch item 1 (user 1's positive) in training: it must not be user 0's negative.
    hits = torch.tensor([[True, True, False], [False, True, False]])
    items = ITEMS.clone().requires_grad_(True)
    loss = in_batch_retrieval_loss(USERS[:1], items, SLOT[:1], hits[:1], temperature=0.5, kind=kind)
    (gradient,) = torch.autograd.grad(loss, items)
    assert gradient[1].abs().sum() == 0  # user 0's loss does not depend on item 1 at all
    assert gradient[2].abs().sum() > 0   # ...but does on its true negative
    # The same item unmasked is a negative and gets a gradient: the mask is what makes the difference.
    unmasked = torch.tensor([[True, False, False]])
    items = ITEMS.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(in_batch_retrieval_loss(USERS[:1], items, SLOT[:1], unmasked, 0.5, kind), items)
    assert gradient[1].abs().sum() > 0


def test_softmax_loss_hand_computed():
    hits = torch.tensor([[True, False, False], [False, True, False]])
    loss = in_batch_retrieval_loss(USERS, ITEMS, SLOT, hits, temperature=1.0, kind="softmax")
    c = 1 / math.sqrt(2)
    # Each user: logits [1 (positive), 0, c] -> -log(e / (e + 1 + e^c)); symmetric for user 1.
    expected = -math.log(math.e / (math.e + 1 + math.exp(c)))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_bce_loss_hand_computed():
    hits = torch.tensor([[True, False, False], [False, True, False]])
    loss = in_batch_retrieval_loss(USERS, ITEMS, SLOT, hits, temperature=1.0, kind="bce")
    c = 1 / math.sqrt(2)

    def softplus(x):
        return math.log1p(math.exp(x))

    # Positive term: BCE(1, logit 1) = softplus(-1); negatives: mean of BCE(0, 0) and BCE(0, c).
    expected = softplus(-1.0) + 0.5 * (softplus(0.0) + softplus(c))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_logq_correction_lowers_popular_items():
    hits = torch.zeros(2, 3, dtype=torch.bool)
    plain = in_batch_retrieval_loss(USERS, ITEMS, SLOT, hits, 1.0, "softmax")
    # Item 2 is very popular (often sampled as a negative): its logit is lowered, so the loss drops.
    log_q = torch.log(torch.tensor([0.1, 0.1, 0.8]))
    corrected = in_batch_retrieval_loss(USERS, ITEMS, SLOT, hits, 1.0, "softmax", log_q=log_q)
    assert float(corrected) < float(plain)


def test_like_loss_labels_by_threshold():
    positive = torch.tensor([0.0, 0.0])
    rating = torch.tensor([5.0, 2.0])
    # Observed: like (5 stars) and dislike (2 stars) at logit 0 -> log 2 each; no negatives.
    assert float(like_loss(positive, torch.empty(2, 0), rating, 4.0)) == pytest.approx(math.log(2))
    negatives = torch.full((2, 3), -100.0)
    assert float(like_loss(positive, negatives, rating, 4.0)) == pytest.approx(0.5 * math.log(2), rel=1e-4)


def test_bad_loss_settings():
    with pytest.raises(ValueError, match="bce, softmax"):
        LossConfig(retrieval="hinge")
    with pytest.raises(ValueError, match="temperature"):
        LossConfig(temperature=0)
