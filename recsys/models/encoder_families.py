"""The Hugging Face encoder types that :class:`~recsys.models.text_encoder.TextEncoder` runs layer
by layer (to cache the output of the frozen ones), and what each needs beyond BERT's own layout
(``model.embeddings``, then ``model.encoder.layer``, each layer taking the states and the mask):

- ``bert``, ``roberta``, ``xlm-roberta``, ``camembert``: BERT's layout (the last three number their
  positions after the padding id, so read ``pad_token_id + 1`` fewer tokens than they have positions);
- ``electra``: a projection of the embeddings to the layers' width, where they are narrower;
- ``distilbert``: its layers at ``model.transformer.layer``, and no pooler;
- ``mpnet``: a relative position bias that its encoder computes once and passes to every layer
  (its table is never fine-tuned), positions numbered as RoBERTa's.

Any other type is refused by name (:func:`check_model_type`).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn
from transformers import AutoModel, PretrainedConfig, PreTrainedModel

# Model types (config.json's model_type) whose layers are run as BERT's are.
SUPPORTED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "mpnet")
# Those without a pooler, which from_pretrained must not be asked to leave out.
_WITHOUT_POOLER = ("electra", "distilbert")
# Those whose position ids start after the padding id (RoBERTa's scheme), so that they read
# pad_token_id + 1 fewer tokens than they have position embeddings.
_POSITIONS_AFTER_PADDING = ("roberta", "xlm-roberta", "camembert", "mpnet")


def check_model_type(config: PretrainedConfig, where: str) -> None:
    """Refuse an encoder whose layers this module cannot run, naming the ones it can (``where``:
    the setting or folder the config came from)."""
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"{where} is a model of type {model_type!r}, whose layers recsys cannot run: use an "
                         f"encoder of type {', '.join(SUPPORTED_MODEL_TYPES)} (config.json's model_type)")


def built_model(config: PretrainedConfig) -> PreTrainedModel:
    """A randomly initialised encoder of ``config``, without a pooler."""
    check_model_type(config, "the encoder config")
    return AutoModel.from_config(config, **loading_options(config))


def loading_options(config: PretrainedConfig) -> dict[str, Any]:
    """Keyword arguments of ``from_pretrained`` / ``from_config`` for ``config``'s type: no pooler."""
    return {} if config.model_type in _WITHOUT_POOLER else {"add_pooling_layer": False}


def layer_stack(model: PreTrainedModel) -> nn.ModuleList:
    """The transformer layers of a supported encoder, bottom first."""
    container = cast(nn.Module, model.transformer if model.config.model_type == "distilbert" else model.encoder)
    return cast(nn.ModuleList, container.layer)


def embedding_layer(model: PreTrainedModel) -> nn.Module:
    """``model``'s embedding layer (token, position and, where the model has them, segment
    embeddings), with ELECTRA's projection to the layers' width where it has one."""
    embeddings = cast(nn.Module, model.embeddings)
    projection = getattr(model, "embeddings_project", None)
    return embeddings if projection is None else ProjectedEmbeddings(embeddings, projection)


class ProjectedEmbeddings(nn.Module):
    """ELECTRA's embeddings followed by the projection to the layers' width that its model applies
    (where the embeddings are narrower than the layers)."""

    def __init__(self, embeddings: nn.Module, projection: nn.Module) -> None:
        super().__init__()
        self.embeddings = embeddings
        self.projection = projection

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.projection(self.embeddings(input_ids=input_ids))


def inner_size(config: PretrainedConfig) -> int:
    """The width of the layers' feed-forward part (``intermediate_size``; DistilBERT's ``hidden_dim``)."""
    return int(config.hidden_dim if config.model_type == "distilbert" else config.intermediate_size)


def readable_tokens(config: PretrainedConfig) -> int:
    """The longest text an encoder of ``config`` reads: one token per position embedding, fewer
    for the types whose positions start after the padding id."""
    offset = int(config.pad_token_id) + 1 if config.model_type in _POSITIONS_AFTER_PADDING else 0
    return int(config.max_position_embeddings) - offset


class RelativePositionBias(nn.Module):
    """MPNet's relative position bias [N, heads, L, L] of states [N, L, H], as its encoder computes
    it once for all its layers, holding only the encoder's bias table (so that the int8 backend's
    copy of the layers does not copy the whole model)."""

    def __init__(self, mpnet: nn.Module) -> None:
        super().__init__()
        self.table = cast(nn.Embedding, cast(nn.Module, mpnet.encoder).relative_attention_bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

        length = hidden.shape[1]
        position = torch.arange(length, device=hidden.device)
        # 32 buckets, as MPNetEncoder.compute_position_bias asks for whatever the config's table holds.
        buckets = MPNetEncoder.relative_position_bucket(position[None, :] - position[:, None], num_buckets=32)
        bias = self.table(buckets).permute(2, 0, 1).unsqueeze(0)
        return bias.expand(hidden.shape[0], -1, length, length)


def position_bias_module(model: PreTrainedModel) -> RelativePositionBias | None:
    """For MPNet, a module computing its relative position bias from its table alone; None for the
    other types."""
    return RelativePositionBias(model) if model.config.model_type == "mpnet" else None


def layer_inputs(position_bias: nn.Module | None, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
    """What each layer takes besides the states ``hidden`` [N, L, H] and the mask: for MPNet, the
    relative position bias [N, heads, L, L] of its :func:`position_bias_module`, computed once for
    all its layers; nothing for the other types (``position_bias`` None)."""
    return {} if position_bias is None else {"position_bias": position_bias(hidden)}
