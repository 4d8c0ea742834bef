"""The model summary printed when training starts (recsys.training.summary)."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from recsys.models.text_encoder import TextEncoder
from recsys.models.two_tower import TwoTowerModel
from recsys.pretrained import bundled_encoder_path
from recsys.training.module import TwoTowerModule
from recsys.training.summary import (
    ComponentParameters,
    ComponentSummary,
    component_parameters,
    encoder_description,
    readable_count,
)
from tests.conftest import TINY_BERT


class Toy(nn.Module):
    """Hand-countable: ``first`` 2x3+3 = 9 trainable; ``second`` 3x1+1 = 4, its weight (3) frozen;
    ``reader`` reads ``first`` (a shared module, as the user tower reads the item-id table)."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(2, 3)
        self.second = nn.Sequential(nn.Linear(3, 1), nn.Dropout(0.1))
        self.second[0].weight.requires_grad_(False)
        self.reader = nn.Module()
        self.reader.table = self.first
        self.reader.scale = nn.Parameter(torch.ones(1))


def test_component_parameters_count_trainable_and_frozen_by_submodule():
    rows = component_parameters(Toy(), depth=2)
    assert rows == [
        ComponentParameters("first", "Linear", 9, 0),
        ComponentParameters("second", "Sequential", 1, 3),
        ComponentParameters("second.0", "Linear", 1, 3),  # the Dropout has no parameters: left out
        # The shared module is listed once (where it was first assigned) but counts in both.
        ComponentParameters("reader", "Module", 9 + 1, 0),
    ]
    assert [row.name for row in component_parameters(Toy(), depth=1)] == ["first", "second", "reader"]


@pytest.mark.parametrize(("layers", "bf16", "expected"), [
    (0, True, "random-init: frozen (all 3 layers), bf16 autocast"),
    (1, False, "random-init: top 1 of 3 layers fine-tuned (embeddings frozen; a frozen copy of them embeds "
               "texts once, as the review histories), float32"),
    (-1, True, "random-init: all 3 layers and the embeddings fine-tuned (a frozen copy of them embeds texts "
               "once, as the review histories), bf16 autocast"),
])
def test_encoder_description_says_which_layers_are_fine_tuned(layers, bf16, expected, tiny_bert_config):
    assert encoder_description(TextEncoder(trainable_layers=layers, bf16=bf16, config=tiny_bert_config)) == expected


def test_the_bundled_encoder_is_named_not_its_folder():
    encoder = TextEncoder(trainable_layers=2)
    assert encoder.source == str(bundled_encoder_path())
    assert encoder_description(encoder).startswith("all-MiniLM-L6-v2 (bundled): top 2 of 6 layers fine-tuned")


def tiny_module(trainable_layers: int) -> TwoTowerModule:
    net = TwoTowerModel(5, text={"trainable_layers": trainable_layers, "bf16": False}, dim=8, head={"hidden": 8},
                        encoder_config=dict(TINY_BERT))
    return TwoTowerModule(net, ks=(1,))


def test_summary_prints_parameters_by_component_and_no_flops(capsys):
    module = tiny_module(trainable_layers=1)
    ComponentSummary().on_fit_start(SimpleNamespace(is_global_zero=True), module)
    printed = capsys.readouterr().out
    encoder = module.net.item_tower.encoder
    top_layer = sum(p.numel() for p in encoder.bert.encoder.layer[-1].parameters())
    everything = sum(p.numel() for p in encoder.parameters())
    # The encoder's row: its top layer trainable; the rest, with the pretrained copy of that layer, frozen.
    row = next(line for line in printed.splitlines() if " encoder " in line).split("│")
    assert [cell.strip() for cell in row[1:5]] == ["encoder", "TextEncoder", readable_count(top_layer),
                                                   readable_count(everything - top_layer)]
    assert "FLOPs" not in printed  # Lightning's summary printed a column of zeros
    assert "Text encoder: random-init: top 1 of 3 layers fine-tuned" in printed
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert f"Parameters: {readable_count(trainable)} trainable" in printed


def test_counts_read_as_in_lightning_summaries_without_padding():
    assert [readable_count(n) for n in (0, 768, 53_200, 2_200_000)] == ["0", "768", "53.2 K", "2.2 M"]


def test_summary_is_printed_by_the_first_process_only(capsys):
    ComponentSummary().on_fit_start(SimpleNamespace(is_global_zero=False), tiny_module(trainable_layers=0))
    assert capsys.readouterr().out == ""
