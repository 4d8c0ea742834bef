"""Ways to run the pretrained text encoder at serving time (new users' reviews, queries, new items).

- ``fp32``: PyTorch, float32 (the reference).
- ``bf16``: PyTorch under bfloat16 autocast (the training default; fastest where the CPU has
  bf16 matrix instructions).
- ``int8``: PyTorch with dynamic int8 quantisation of every linear layer (weights int8 per output
  channel, activations quantised per batch on the fly).
- ``onnx``: the float32 graph exported to ONNX (``encoder.onnx`` in the export) and run by
  onnxruntime.

All return mean-pooled float32 embeddings [N, H] of a padded token batch. ``scripts/benchmark_inference.py``
measures their speed and the change in recall@10/RMSE they cause.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from recsys.models.encoder_families import layer_inputs, position_bias_module
from recsys.models.text_encoder import TextEncoder, mean_pool
from recsys.serving.backend_names import TEXT_BACKENDS

ONNX_OPSET = 17

TextBackend = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class PretrainedTextModel(nn.Module):
    """The pretrained path of a :class:`TextEncoder` as one float32 module: embeddings, every layer
    as loaded (the frozen bottom and the pretrained copy of fine-tuned layers), mean pooling.

    Builds its additive attention mask itself, so that the module traces to ONNX.
    """

    def __init__(self, encoder: TextEncoder) -> None:
        super().__init__()
        self.embeddings = encoder.pretrained_embeddings or encoder.embeddings
        self.layers = nn.ModuleList([*encoder.layers[: encoder.frozen_layers], *encoder.pretrained_top])
        self.position_bias = position_bias_module(encoder.bert)
        self.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(input_ids=input_ids)
        blocked = 1.0 - attention_mask[:, None, None, :].to(hidden.dtype)
        mask = blocked * torch.finfo(hidden.dtype).min
        inputs = layer_inputs(self.position_bias, hidden)
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=mask, **inputs)
            if isinstance(hidden, tuple):
                hidden = hidden[0]
        return mean_pool(hidden.float(), attention_mask)


def _torch_backend(model: nn.Module, bf16: bool) -> TextBackend:
    @torch.no_grad()
    def run(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            return model(input_ids, attention_mask).float()

    return run


def quantize_int8(encoder: TextEncoder) -> nn.Module:
    """A copy of the pretrained path with dynamic int8 linear layers (per-channel weight scales:
    on MiniLM they keep the embeddings much closer to fp32 than one scale per tensor, for ~10% speed)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        # PyTorch marks its quantised tensor constructors as deprecated (moving to torchao); the
        # dynamic int8 kernels still ship and are what this backend measures.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(PretrainedTextModel(encoder), {nn.Linear: per_channel_dynamic_qconfig},
                                dtype=torch.qint8)


def export_onnx(encoder: TextEncoder, path: Path | str) -> Path:
    """Write the float32 pretrained path to ONNX, with dynamic batch and sequence axes."""
    path = Path(path)
    model = PretrainedTextModel(encoder).float()
    input_ids = torch.ones(2, 16, dtype=torch.long)
    attention_mask = torch.ones(2, 16, dtype=torch.long)
    attention_mask[1, 8:] = 0
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (input_ids, attention_mask), str(path), input_names=["input_ids", "attention_mask"],
            output_names=["embeddings"], opset_version=ONNX_OPSET, dynamo=False,
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                          "embeddings": {0: "batch"}},
        )
    return path


def _onnx_backend(path: Path, threads: int | None = None) -> TextBackend:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("text_backend=onnx needs onnxruntime: pip install -e '.[onnx]'") from None
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: export with export.onnx=true to use text_backend=onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        (embeddings,) = session.run(None, {"input_ids": input_ids.numpy().astype("int64"),
                                           "attention_mask": attention_mask.numpy().astype("int64")})
        return torch.from_numpy(embeddings)

    return run


def build_text_backend(kind: str, encoder: TextEncoder, onnx_path: Path | str | None = None) -> TextBackend:
    """A function ``(input_ids, attention_mask) -> embeddings [N, H]`` running ``encoder``'s
    pretrained path with backend ``kind`` (``onnx`` reads ``onnx_path``)."""
    if kind not in TEXT_BACKENDS:
        raise ValueError(f"text_backend={kind!r} is not allowed; use one of: {', '.join(TEXT_BACKENDS)}")
    if kind == "onnx":
        if onnx_path is None:
            raise ValueError("text_backend=onnx needs the path of an ONNX encoder (export.onnx=true)")
        return _onnx_backend(Path(onnx_path))
    if kind == "int8":
        return _torch_backend(quantize_int8(encoder), bf16=False)
    return _torch_backend(PretrainedTextModel(encoder), bf16=kind == "bf16")
