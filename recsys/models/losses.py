"""Losses of the two-tower model: rating MSE, like BCE, and in-batch retrieval on cosine."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recsys.settings import checked_choice, checked_flag, checked_number

RETRIEVAL_LOSSES = ("bce", "softmax", "catalog_softmax")


@dataclass
class LossConfig:
    """Weights and settings of the losses (``model.module.loss`` in config)."""

    rating_weight: float = 1.0
    like_weight: float = 0.5
    retrieval_weight: float = 1.0
    temperature: float = 0.05
    like_threshold: float = 4.0
    retrieval: str = "bce"
    logq_correction: bool = False
    # Soft targets from an EASE teacher over the catalog (0 = off); see distillation_loss.
    distill_weight: float = 0.0
    distill_temperature: float = 1.0
    teacher_l2: float = 200.0

    def __post_init__(self) -> None:
        key = "model.module.loss."
        self.retrieval = checked_choice(key + "retrieval", self.retrieval, RETRIEVAL_LOSSES)
        # A negative weight would train the model to get worse at its loss.
        for name in ("rating_weight", "like_weight", "retrieval_weight", "distill_weight"):
            setattr(self, name, checked_number(key + name, getattr(self, name), least=0, note="(0 = off)"))
        for name in ("temperature", "distill_temperature", "teacher_l2"):
            setattr(self, name, checked_number(key + name, getattr(self, name), above=0))
        self.like_threshold = checked_number(key + "like_threshold", self.like_threshold)
        self.logq_correction = checked_flag(key + "logq_correction", self.logq_correction)


def rating_loss(predicted: torch.Tensor, rating: torch.Tensor) -> torch.Tensor:
    """Mean squared error between predicted and observed stars."""
    return F.mse_loss(predicted, rating)


def like_loss(positive_logit: torch.Tensor, negative_logits: torch.Tensor, rating: torch.Tensor,
              threshold: float) -> torch.Tensor:
    """BCE of like-logits: an observed pair is a like when rated >= ``threshold`` (else a
    dislike); sampled negatives [B, N] are not liked. Observed and sampled terms weigh equally."""
    observed = F.binary_cross_entropy_with_logits(positive_logit, (rating >= threshold).float())
    if negative_logits.numel() == 0:
        return observed
    sampled = F.binary_cross_entropy_with_logits(negative_logits, torch.zeros_like(negative_logits))
    return 0.5 * (observed + sampled)


def in_batch_retrieval_loss(
    users: torch.Tensor, items: torch.Tensor, item_slot: torch.Tensor, accidental_hits: torch.Tensor,
    temperature: float, kind: str = "bce", log_q: torch.Tensor | None = None,
) -> torch.Tensor:
    """Retrieval loss on cosine(u, v) / temperature over every (user, batch item) pair.

    ``users`` [B, d] and ``items`` [U, d] are unit vectors; ``item_slot`` [B] is each user's
    positive among the U batch items; ``accidental_hits`` [B, U] marks batch items the user has
    in training (or its own item): apart from the positive itself they are no negatives and are
    left out of the loss. ``log_q`` [U] (log-probability that each batch item is a candidate)
    applies the logQ correction: other pairs' positives arrive in proportion to popularity, so
    without it the loss pushes popular items down (it learns roughly log p(item|user) / q(item)).

    ``bce``: per user, BCE of the positive plus the mean BCE of its valid negatives.
    ``softmax`` (and ``catalog_softmax``, where ``items`` is the whole catalog): cross-entropy of
    the positive against the valid negatives.
    """
    logits = users @ items.T / temperature
    if log_q is not None:
        logits = logits - log_q[None, :]
    positive = F.one_hot(item_slot, num_classes=items.shape[0]).bool()
    valid_negative = ~accidental_hits & ~positive
    if kind in ("softmax", "catalog_softmax"):
        masked = logits.masked_fill(~(valid_negative | positive), float("-inf"))
        return F.cross_entropy(masked, item_slot)
    positive_term = F.binary_cross_entropy_with_logits(logits[positive], torch.ones(len(users), device=logits.device))
    negative_bce = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    per_user = (negative_bce * valid_negative).sum(1) / valid_negative.sum(1).clamp(min=1)
    return positive_term + per_user.mean()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      candidates: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student's softmax against the teacher's, over each row's candidates.

    ``student_logits``, ``teacher_logits`` and the boolean ``candidates`` are [B, I]; items
    outside a row's candidates (the user's training items) take part in neither distribution.
    Equals KL(teacher || student) plus the teacher's entropy, so its gradient is the KL's. Rows
    without candidates (a user who has every item) are left out; with none at all it is 0.
    """
    rows = candidates.any(-1)
    student_logits, teacher_logits, candidates = student_logits[rows], teacher_logits[rows], candidates[rows]
    if not len(candidates):
        return student_logits.sum() * 0.0
    teacher = torch.softmax(teacher_logits.masked_fill(~candidates, float("-inf")), dim=-1)
    log_student = torch.log_softmax(student_logits.masked_fill(~candidates, float("-inf")), dim=-1)
    return -(teacher * log_student.masked_fill(~candidates, 0.0)).sum(-1).mean()
