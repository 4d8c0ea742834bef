"""The model summary printed when training starts: parameters by component, and what the
encoder settings made of the text encoder."""

from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelSummary
from pytorch_lightning.utilities.model_summary import get_human_readable_count
from torch import nn

from recsys.models.text_encoder import TextEncoder
from recsys.pretrained import bundled_encoder_path


@dataclass(frozen=True)
class ComponentParameters:
    """Parameter counts of one submodule (``name`` as in the state dict, e.g. ``net.item_tower``)."""

    name: str
    kind: str
    trainable: int
    frozen: int


def component_parameters(module: nn.Module, depth: int = 3) -> list[ComponentParameters]:
    """Trainable and frozen parameter counts of ``module``'s submodules down to ``depth`` levels
    (``net.item_tower.encoder`` is level 3), in definition order; submodules without parameters
    are left out. A parameter shared by two components (the item-id table that the user tower
    reads from the item tower) counts in both."""
    rows = []
    for name, submodule in module.named_modules():
        if name and name.count(".") < depth:
            trainable, frozen = parameter_counts(submodule)
            if trainable or frozen:
                rows.append(ComponentParameters(name, type(submodule).__name__, trainable, frozen))
    return rows


def parameter_counts(module: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameter counts of ``module``, each shared parameter counted once."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in module.parameters()) - trainable


def encoder_description(encoder: TextEncoder) -> str:
    """What ``model.text`` made of the encoder: its weights, which layers are fine-tuned, and its
    precision, e.g. ``all-MiniLM-L6-v2 (bundled): top 2 of 6 layers fine-tuned (embeddings
    frozen; a frozen copy of them embeds texts once, as the review histories), bf16 autocast``."""
    if encoder.fully_frozen:
        tuning = f"frozen (all {encoder.num_layers} layers)"
    else:
        tuned = (f"all {encoder.num_layers} layers and the embeddings" if encoder.train_embeddings
                 else f"top {encoder.trainable_layers} of {encoder.num_layers} layers")
        frozen = "" if encoder.train_embeddings else "embeddings frozen; "
        tuning = f"{tuned} fine-tuned ({frozen}a frozen copy of them embeds texts once, as the review histories)"
    precision = "bf16 autocast" if encoder.bf16 else "float32"
    return f"{encoder_weights(encoder)}: {tuning}, {precision}"


def encoder_weights(encoder: TextEncoder) -> str:
    """Where the encoder's weights came from: the bundled MiniLM, a folder, or a random init (tests)."""
    try:
        bundled = str(bundled_encoder_path())
    except ImportError:
        bundled = None
    return "all-MiniLM-L6-v2 (bundled)" if encoder.source == bundled else encoder.source


def readable_count(count: int) -> str:
    """``count`` as Lightning's summaries write it (``2.2 M``, ``53.2 K``, ``768``)."""
    return get_human_readable_count(count).strip()  # it pads counts under 1,000 with two spaces


class ComponentSummary(ModelSummary):
    """Replaces Lightning's model summary, whose FLOPs column read 0 for every module (Lightning
    counts FLOPs only over an ``example_input_array``, which a model fed batch dataclasses lacks):
    parameters by component, trainable and frozen, and the text encoder's fine-tuning settings.
    The encoder's FLOPs are counted in training instead (``train/encoder_tflops``)."""

    def __init__(self, max_depth: int = 3) -> None:
        super().__init__(max_depth=max_depth)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._max_depth or not trainer.is_global_zero:
            return
        from rich import get_console
        from rich.table import Table

        table = Table(header_style="bold magenta")
        table.add_column("Component", no_wrap=True)
        table.add_column("Type")
        table.add_column("Trainable", justify="right")
        table.add_column("Frozen", justify="right")
        for row in component_parameters(pl_module, self._max_depth):
            indent = "  " * row.name.count(".")
            table.add_row(indent + row.name.rsplit(".", 1)[-1], row.kind, readable_count(row.trainable),
                          readable_count(row.frozen))
        console = get_console()
        console.print(table)
        trainable, frozen = parameter_counts(pl_module)
        console.print(f"[bold]Parameters[/]: {readable_count(trainable)} trainable, {readable_count(frozen)} frozen",
                      soft_wrap=True)
        encoder = getattr(pl_module, "encoder", None)
        if isinstance(encoder, TextEncoder):
            console.print(f"[bold]Text encoder[/]: {encoder_description(encoder)}", soft_wrap=True)
