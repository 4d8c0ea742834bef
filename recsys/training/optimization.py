"""How the two-tower module optimises: its parameter groups (the fine-tuned encoder layers and
the id tables may take their own learning rate and weight decay) and its learning-rate schedule
(linear warmup, then cosine or linear decay), with the checks of their settings."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from recsys.settings import checked_choice, checked_number

DECAYS = ("cosine", "linear")


def check_schedule(warmup_ratio: float, decay: str) -> None:
    """A ValueError naming the setting, unless ``0 <= warmup_ratio < 1`` and ``decay`` is one of :data:`DECAYS`."""
    checked_choice("model.module.decay", decay, DECAYS)
    checked_number("model.module.warmup_ratio", warmup_ratio, least=0, below=1,
                   note="(a share of the steps, e.g. 0.1)")


def check_optimizer_settings(optimizer: Callable[..., Optimizer] | None) -> None:
    """Refuse a learning rate or weight decay of the optimizer partial (``model.module.optimizer``)
    that is not a number in range, before the optimizer is built at the start of fitting."""
    settings = getattr(optimizer, "keywords", None) or {}
    if "lr" in settings:
        checked_number("model.module.optimizer.lr", settings["lr"], above=0)
    if "weight_decay" in settings:
        checked_number("model.module.optimizer.weight_decay", settings["weight_decay"], least=0)


def warmup_then_decay(total_steps: int, warmup_ratio: float, decay: str = "cosine") -> Callable[[int], float]:
    """LR multiplier: linear warmup over ``warmup_ratio`` of the steps, then cosine or linear decay to 0."""
    check_schedule(warmup_ratio, decay)
    warmup = max(1, int(total_steps * warmup_ratio))

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if decay == "cosine" else 1.0 - progress

    return multiplier


def resume_schedule(scheduler: LambdaLR) -> None:
    """Set the optimizer's learning rates to what ``scheduler`` gives at its restored step.

    A resumed run restores the rates that the checkpoint's schedule left in the optimizer. The
    schedule itself is laid out anew over the resumed run's length, which a larger
    ``trainer.max_epochs`` makes longer: without this, the first resumed step took the old
    schedule's last rate (0 at the end of a finished run) and only the next one the new schedule's.
    For a run resumed with its own length, the rates are the ones restored.
    """
    for group, base_lr, multiplier in zip(scheduler.optimizer.param_groups, scheduler.base_lrs,
                                          scheduler.lr_lambdas, strict=True):
        group["lr"] = base_lr * multiplier(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def parameter_groups(model: nn.Module, encoder: nn.Module | None, encoder_lr: float,
                     embedding_weight_decay: float | None = None,
                     embedding_lr: float | None = None) -> list[dict[str, Any]]:
    """The optimizer's parameter groups over ``model``'s trainable parameters, each named: the
    trainable layers of ``encoder`` (part of ``model``) at ``encoder_lr``; the id tables
    (embeddings wider than 1, not the 1-d biases) with their own weight decay and learning rate
    where either is given; the rest at the optimizer's settings."""
    encoder_parameters = list(encoder.parameters()) if encoder is not None else []
    encoder_ids = {id(p) for p in encoder_parameters}
    fine_tuned = [p for p in encoder_parameters if p.requires_grad]
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in encoder_ids]
    groups: list[dict[str, Any]] = [{"params": rest, "name": "rest"}]
    if embedding_weight_decay is not None or embedding_lr is not None:
        tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding) and m.embedding_dim > 1}
        embedding_group: dict[str, Any] = {"params": [p for p in rest if id(p) in tables], "name": "embeddings"}
        if embedding_weight_decay is not None:
            embedding_group["weight_decay"] = embedding_weight_decay
        if embedding_lr is not None:
            embedding_group["lr"] = embedding_lr
        groups = [{"params": [p for p in rest if id(p) not in tables], "name": "rest"}, embedding_group]
    if fine_tuned:
        groups.append({"params": fine_tuned, "lr": encoder_lr, "name": "encoder"})
    return groups
