"""The optimiser's parameter groups and the learning-rate schedule, on small modules."""

import numpy as np
import pytest
from torch import nn

from recsys.training.optimization import parameter_groups, warmup_then_decay


class Towers(nn.Module):
    """An encoder with a frozen layer and a trainable one, an id table, a 1-d bias table and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
        self.encoder[0].requires_grad_(False)
        self.ids = nn.Embedding(10, 4)
        self.bias = nn.Embedding(10, 1)
        self.head = nn.Linear(8, 1)


def names_by_group(model: nn.Module, groups: list[dict]) -> dict[str, set[str]]:
    names = {id(p): name for name, p in model.named_parameters()}
    return {group["name"]: {names[id(p)] for p in group["params"]} for group in groups}


def test_every_trainable_parameter_is_in_one_group_and_frozen_ones_in_none():
    model = Towers()
    groups = parameter_groups(model, model.encoder, encoder_lr=1e-5)
    assert names_by_group(model, groups) == {
        "rest": {"ids.weight", "bias.weight", "head.weight", "head.bias"},
        "encoder": {"encoder.1.weight", "encoder.1.bias"},
    }
    assert groups[1]["lr"] == 1e-5 and "lr" not in groups[0]  # the rest take the optimizer's


def test_id_tables_get_their_own_group_and_the_biases_stay_with_the_rest():
    model = Towers()
    groups = parameter_groups(model, model.encoder, encoder_lr=1e-5, embedding_weight_decay=0.0)
    assert names_by_group(model, groups) == {
        "rest": {"bias.weight", "head.weight", "head.bias"},
        "embeddings": {"ids.weight"},
        "encoder": {"encoder.1.weight", "encoder.1.bias"},
    }
    embeddings = next(g for g in groups if g["name"] == "embeddings")
    assert embeddings["weight_decay"] == 0.0 and "lr" not in embeddings
    # A frozen encoder adds no group; a learning rate alone makes the table group too.
    model.encoder.requires_grad_(False)
    groups = parameter_groups(model, model.encoder, encoder_lr=1e-5, embedding_lr=0.05)
    assert [g["name"] for g in groups] == ["rest", "embeddings"]
    assert groups[1]["lr"] == 0.05 and "weight_decay" not in groups[1]


def test_warmup_then_cosine_decay():
    schedule = warmup_then_decay(total_steps=100, warmup_ratio=0.1)
    assert schedule(0) == pytest.approx(0.1) and schedule(9) == pytest.approx(1.0)
    assert schedule(55) == pytest.approx(0.5, abs=0.01) and schedule(100) == pytest.approx(0.0, abs=1e-6)
    linear = warmup_then_decay(total_steps=100, warmup_ratio=0.1, decay="linear")
    assert linear(55) == pytest.approx(0.5, abs=0.01)
    assert np.all(np.diff([schedule(s) for s in range(10, 100)]) <= 1e-12)
