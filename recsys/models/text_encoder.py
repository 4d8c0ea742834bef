"""A BERT-family encoder with mean pooling, of which only the top layers are fine-tuned.

BERT-family means an encoder whose embeddings and stack of layers this module runs itself (to
cache the frozen prefix): see :mod:`recsys.models.encoder_families`.

The frozen part (embeddings and the lower layers) never changes during training, so its output
for a fixed set of texts (the item catalog) can be computed once and kept: then a training step
only runs the trainable top layers. ``trainable_layers``: 0 = all frozen, -1 = all trainable,
N = the top N layers trainable.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig
from transformers.masking_utils import create_bidirectional_mask
from transformers.utils import logging as hf_logging

from recsys.data.tokenization import TokenizedTexts
from recsys.models.encoder_families import (
    built_model,
    check_model_type,
    embedding_layer,
    inner_size,
    layer_inputs,
    layer_stack,
    loading_options,
    position_bias_module,
    readable_tokens,
)
from recsys.pretrained import resolve_encoder_path
from recsys.settings import checked_flag, is_whole_number

log = logging.getLogger(__name__)

ENCODE_BATCH = 128
# Encoding batches are padded to a multiple of this many tokens. Length-sorted batches otherwise
# each have a shape of their own, and CPU kernels cache per shape: encoding Musical Instruments'
# 8,208 reviews grew the process by 2.1 GB unpadded and by 0.7 GB padded, at the same speed.
PAD_MULTIPLE = 32


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' warnings and progress bars inside the block, then restore both.

    The pooler weights we do not use are not news, nor is a progress bar over 100 small tensors,
    which printed at every load (each CV fold, test and script).
    """
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` [N, L, H] over the positions where ``attention_mask`` [N, L] is 1."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class TextEncoder(nn.Module):
    """Hugging Face BERT-family encoder + mean pooling, with ``trainable_layers`` top layers fine-tuned.

    Args:
        pretrained_path: local folder of a Hugging Face BERT-family model (None: bundled
            all-MiniLM-L6-v2); see :data:`~recsys.models.encoder_families.SUPPORTED_MODEL_TYPES`.
        trainable_layers: top layers to fine-tune (0 none, -1 all, embeddings included).
        bf16: run under bfloat16 autocast on CPU (about 2-3x faster than float32 there).
        config: build a randomly initialised encoder from this config instead (tests).

    ``bert`` holds the Hugging Face model whatever its type (the name is in checkpoints and exports).
    """

    def __init__(
        self,
        pretrained_path: str | Path | None = None,
        trainable_layers: int = 1,
        bf16: bool = True,
        config: PretrainedConfig | None = None,
    ) -> None:
        super().__init__()
        bf16 = checked_flag("model.text.bf16", bf16)
        if config is not None:
            self.bert = built_model(config)
            self.source = "random-init"
        else:
            path = resolve_encoder_path(pretrained_path)
            stored = AutoConfig.from_pretrained(str(path))  # a clear error for a folder that is not a model
            check_model_type(stored, f"model.text.pretrained_path={path}")
            with quiet_transformers():
                # float32 weights whatever the checkpoint stores (transformers would keep a float16
                # or bfloat16 file's dtype): the optimiser updates them, and autocast sets the compute.
                self.bert = AutoModel.from_pretrained(str(path), dtype=torch.float32, **loading_options(stored))
            self.source = str(path)
        num_layers = self.bert.config.num_hidden_layers
        if not is_whole_number(trainable_layers) or not -1 <= trainable_layers <= num_layers:
            raise ValueError(
                f"model.text.trainable_layers={trainable_layers!r} is not allowed: use -1 (all), 0 (frozen) "
                f"or 1..{num_layers}"
            )
        self.trainable_layers = num_layers if trainable_layers == -1 else trainable_layers
        self.train_embeddings = trainable_layers == -1
        self.bf16 = bf16
        self.frozen_layers = num_layers - self.trainable_layers
        # FLOPs of the trainable layers since the last reset (read by the training loop).
        self.flops_counter = 0.0
        for parameter in self.bert.parameters():
            parameter.requires_grad_(False)
        for layer in self.layers[self.frozen_layers :]:
            for parameter in layer.parameters():
                parameter.requires_grad_(True)
        if self.train_embeddings:
            for parameter in self.embeddings.parameters():
                parameter.requires_grad_(True)
        # A frozen copy of the layers that fine-tuning changes: with the shared frozen bottom it
        # is the pretrained encoder, for texts that are embedded once (user review histories).
        self.pretrained_embeddings = copy.deepcopy(self.embeddings) if self.train_embeddings else None
        self.pretrained_top = copy.deepcopy(self.layers[self.frozen_layers :])
        for module in (self.pretrained_embeddings, self.pretrained_top):
            if module is not None:
                module.requires_grad_(False)
        # from_pretrained returns the model in eval mode, and Lightning trains modules in the mode
        # it finds them in: without this, the fine-tuned layers ran without dropout, except in a
        # run that had just encoded its texts (encode() restores train mode), so a first run and
        # its rerun on a warm cache trained differently.
        self.train()

    @property
    def embeddings(self) -> nn.Module:
        """The model's embedding layer (token, position and, where the model has them, segment
        embeddings), with ELECTRA's projection to the layers' width where it has one."""
        return embedding_layer(self.bert)

    @property
    def layers(self) -> nn.ModuleList:
        """The model's transformer layers, bottom first."""
        return layer_stack(self.bert)

    @property
    def hidden_size(self) -> int:
        return self.bert.config.hidden_size

    @property
    def num_layers(self) -> int:
        return self.bert.config.num_hidden_layers

    @property
    def fully_frozen(self) -> bool:
        return self.trainable_layers == 0

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        self.pretrained_top.eval()
        if self.pretrained_embeddings is not None:
            self.pretrained_embeddings.eval()
        # Frozen layers stay in eval mode (no dropout), so their output is a pure function of
        # the text and may be cached.
        if not self.train_embeddings:
            self.embeddings.eval()
        for layer in self.layers[: self.frozen_layers]:
            layer.eval()
        return self

    @property
    def max_tokens(self) -> int:
        """The longest text the encoder reads: one token per position embedding (fewer for the
        types whose positions start after the padding id)."""
        return readable_tokens(self.bert.config)

    def check_tokens(self, tokens: TokenizedTexts) -> None:
        """Refuse texts that the encoder cannot read, naming the settings to change: token ids
        beyond its vocabulary (a tokenizer of another model) or texts longer than its positions (a
        tokenizer whose maximum length is not the model's); both failed deep in the embedding lookup."""
        vocabulary = int(self.bert.config.vocab_size)
        largest = int(tokens.ids.max(initial=-1))
        if largest >= vocabulary:
            raise ValueError(
                f"the texts hold token id {largest}, beyond the encoder's vocabulary of {vocabulary} tokens: the "
                "tokenizer (data.tokenizer_path) is not the encoder's (model.text.pretrained_path); use the tokenizer "
                "saved with the encoder"
            )
        longest = int(tokens.lengths().max(initial=0))
        if longest > self.max_tokens:
            raise ValueError(
                f"the texts hold up to {longest} tokens, more than the encoder reads ({self.max_tokens}, its position "
                f"embeddings): set data.item_max_tokens and data.review_max_tokens to at most {self.max_tokens}"
            )

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.bf16:
            return torch.autocast(self.bert.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _mask(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        return create_bidirectional_mask(config=self.bert.config, inputs_embeds=hidden, attention_mask=attention_mask)

    def _layers(self, hidden: torch.Tensor, attention_mask: torch.Tensor, layers: Iterable[nn.Module]) -> torch.Tensor:
        mask = self._mask(hidden, attention_mask)
        inputs = layer_inputs(position_bias_module(self.bert), hidden)
        for layer in layers:
            hidden = layer(hidden, attention_mask=mask, **inputs)
            if isinstance(hidden, tuple):
                hidden = hidden[0]
        return hidden

    def frozen_prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states after the frozen part [N, L, H] (no gradient). Requires frozen embeddings."""
        with torch.no_grad(), self.autocast():
            hidden = self.embeddings(input_ids=input_ids)
            return self._layers(hidden, attention_mask, self.layers[: self.frozen_layers])

    def estimate_flops(self, attention_mask: torch.Tensor, layers: int, backward: bool) -> float:
        """FLOPs of ``layers`` transformer layers on a padded batch (the padding is computed too).

        Per layer and sequence of length L: 2*L*(4*H*H + 2*H*I) for the projections and the MLP,
        plus 4*L*L*H for the attention scores and mixing; a backward pass costs twice a forward.
        """
        config = self.bert.config
        n, length = attention_mask.shape
        hidden, inner = config.hidden_size, inner_size(config)
        forward = n * layers * (2 * length * (4 * hidden * hidden + 2 * hidden * inner) + 4 * length * length * hidden)
        return float(forward * (3 if backward else 1))

    def states_from_prefix(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token states [N, L, H] after the trainable layers, run on frozen-prefix states; with
        no trainable layer, the prefix states themselves (in their dtype: no copy)."""
        if not self.trainable_layers:
            return hidden
        if self.training:
            self.flops_counter += self.estimate_flops(attention_mask, self.trainable_layers, backward=True)
        hidden = hidden.float()  # cached states are bfloat16; autocast casts back where it pays
        with self.autocast():
            return self._layers(hidden, attention_mask, self.layers[self.frozen_layers :])

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last-layer token states [N, L, H] of a padded token batch."""
        if self.train_embeddings:
            with self.autocast():
                return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.states_from_prefix(self.frozen_prefix(input_ids, attention_mask), attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled embeddings [N, H] (float32) of a padded token batch."""
        return mean_pool(self.token_states(input_ids, attention_mask).float(), attention_mask)

    @torch.no_grad()
    def forward_pretrained(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled embeddings [N, H] by the encoder as loaded, before any fine-tuning."""
        with self.autocast():
            embeddings = self.pretrained_embeddings or self.embeddings
            hidden = embeddings(input_ids=input_ids)
            hidden = self._layers(hidden, attention_mask, self.layers[: self.frozen_layers])
            hidden = self._layers(hidden, attention_mask, self.pretrained_top)
        return mean_pool(hidden.float(), attention_mask)

    @torch.no_grad()
    def encode(
        self, tokens: TokenizedTexts, batch_size: int = ENCODE_BATCH, pretrained: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """Embeddings [len(tokens), H] of every text, in eval mode, in length-sorted batches
        (sorting by length avoids most padding); ``pretrained`` uses the weights as loaded;
        ``on_batch(n)`` is told of each batch of n texts encoded (a progress bar's advance)."""
        if len(tokens) == 0:
            return torch.empty(0, self.hidden_size)
        self.check_tokens(tokens)
        was_training = self.training
        self.eval()
        try:
            return encode_in_length_order(self.forward_pretrained if pretrained else self.forward, tokens,
                                          batch_size, device=self.bert.device, max_width=self.max_tokens,
                                          on_batch=on_batch)
        finally:
            self.train(was_training)

    def pretrained_fingerprint(self) -> str:
        """sha256 of the weights as loaded (frozen part and pretrained copy), the precision and the
        batches' padding: keys on-disk caches of :meth:`forward_pretrained` outputs."""
        digest = hashlib.sha256(f"{self.bf16}-pad{PAD_MULTIPLE}".encode())
        state = {k: v for k, v in self.state_dict().items() if not k.startswith(self._trainable_prefixes())}
        for name, tensor in sorted(state.items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()

    def _trainable_prefixes(self) -> tuple[str, ...]:
        stack = next(name for name, module in self.bert.named_modules() if module is self.layers)
        prefixes = tuple(f"bert.{stack}.{i}." for i in range(self.frozen_layers, self.num_layers))
        return prefixes + (("bert.embeddings.", "bert.embeddings_project.") if self.train_embeddings else ())


@torch.no_grad()
def encode_in_length_order(
    encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], tokens: TokenizedTexts,
    batch_size: int = ENCODE_BATCH, pad_multiple: int = PAD_MULTIPLE,
    device: torch.device | str | None = None, max_width: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """``encode(input_ids, attention_mask)`` of every text [len(tokens), H] (on the CPU), run on
    batches of texts of similar length (sorting by length avoids most padding), each padded to a
    multiple of ``pad_multiple`` tokens (few distinct shapes) but to no more than ``max_width``
    (the encoder's positions), rows in the original order.
    ``device``: where ``encode`` runs (the token batches are moved there; default the CPU);
    ``on_batch(n)`` is called after each batch of n texts."""
    order = torch.from_numpy(tokens.lengths().argsort(kind="stable"))
    output: torch.Tensor | None = None
    for start in range(0, len(tokens), batch_size):
        rows = order[start : start + batch_size]
        embeddings = encode(*(t.to(device) for t in tokens.pad(rows.numpy(), pad_multiple, max_width)))
        if output is None:
            output = torch.empty(len(tokens), embeddings.shape[-1])
        output[rows] = embeddings.to(output.device)
        if on_batch is not None:
            on_batch(len(rows))
    if output is None:
        raise ValueError("encode_in_length_order needs at least one text")
    return output


class PrefixCache(nn.Module):
    """The frozen-prefix states of a fixed set of texts (e.g. the item catalog), computed once.

    Held as a non-persistent buffer: it is derived from the frozen weights and the texts, so it
    is never saved in checkpoints. The prefix runs where the encoder is; the states are kept there.
    """

    states: torch.Tensor
    masks: torch.Tensor

    def __init__(self, encoder: TextEncoder, tokens: TokenizedTexts, batch_size: int = ENCODE_BATCH) -> None:
        super().__init__()
        encoder.check_tokens(tokens)
        width = max(int(tokens.lengths().max(initial=1)), 1)
        device = encoder.bert.device
        states = torch.zeros(len(tokens), width, encoder.hidden_size, dtype=torch.bfloat16, device=device)
        masks = torch.zeros(len(tokens), width, dtype=torch.long, device=device)
        for start in range(0, len(tokens), batch_size):
            rows = list(range(start, min(start + batch_size, len(tokens))))
            input_ids, attention_mask = (t.to(device) for t in tokens.pad(rows))
            hidden = encoder.frozen_prefix(input_ids, attention_mask)
            states[rows, : hidden.shape[1]] = hidden.to(torch.bfloat16)
            masks[rows, : hidden.shape[1]] = attention_mask
        self.register_buffer("states", states, persistent=False)
        self.register_buffer("masks", masks, persistent=False)

    def gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """States [N, L, H] and mask [N, L] of ``rows``, cut to their longest text."""
        masks = self.masks[rows]
        width = max(int(masks.sum(1).max().item()), 1) if len(rows) else 1
        return self.states[rows, :width], masks[:, :width]
