"""Read an export directory back, verifying its format version and every checksum."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file
from transformers import PreTrainedTokenizerBase

from recsys.export import format as fmt
from recsys.models.two_tower import TwoTowerModel
from recsys.pretrained import load_tokenizer
from recsys.run_folder import run_name, tested_checkpoint

NET_SETTINGS = ("dim", "item", "user", "head", "biases", "bias_shrinkage")


@dataclass
class ExportBundle:
    """Everything in an export directory, loaded."""

    directory: Path
    manifest: dict
    item_ids: pd.Index
    items: pd.DataFrame
    user_ids: pd.Index
    reviews: pd.DataFrame
    item_vectors: torch.Tensor
    user_vectors: torch.Tensor
    net: TwoTowerModel
    tokenizer: PreTrainedTokenizerBase
    # Hybrid ranking (a model trained with model.module.ease_fusion > 0): the EASE item-item
    # weights [num_items, num_items] and the fusion weight; None and 0 rank by cosine alone.
    ease_weights: torch.Tensor | None = None
    ease_fusion: float = 0.0

    @property
    def config(self) -> dict:
        return self.manifest["config"]


class ExportErrorMissing(fmt.ExportError, FileNotFoundError):
    """The export directory does not exist."""


def read_manifest(directory: Path) -> dict:
    """The manifest, after checking that the format is known and every file matches its sha256."""
    directory = Path(directory)
    path = directory / fmt.MANIFEST
    if not directory.is_dir():
        where = "" if directory.is_absolute() else f" (read from {Path.cwd()})"
        raise ExportErrorMissing(f"No export directory at {directory}{where}: make one from a run's checkpoint with "
                                 f"python scripts/export.py ckpt=<run>/checkpoints/<best>.ckpt out={directory}")
    if not path.is_file():
        best = tested_checkpoint(directory)
        if best is not None:
            raise fmt.ExportError(f"{directory} is a training run, not an export: export its checkpoint first, e.g. "
                                  f"python scripts/export.py ckpt={best} out=exports/{run_name(best)}")
        raise fmt.ExportError(f"{directory} has no {fmt.MANIFEST}: not an export, or an incomplete one")
    manifest = json.loads(path.read_text())
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > fmt.FORMAT_VERSION:
        raise fmt.ExportError(
            f"{directory} has export format {version!r}, newer than this recsys reads ({fmt.FORMAT_VERSION}); "
            "upgrade recsys to load it"
        )
    expected = manifest.get("files", {})
    found = fmt.checksums(directory)
    missing = sorted(set(expected) - set(found))
    if missing:
        raise fmt.ExportError(f"{directory} is missing files listed in its manifest: {', '.join(missing)}")
    changed = sorted(name for name, digest in expected.items() if found[name] != digest)
    if changed:
        raise fmt.ExportError(f"{directory}: checksum mismatch (modified or corrupted): {', '.join(changed)}")
    extra = sorted(set(found) - set(expected))
    if extra:
        raise fmt.ExportError(f"{directory} holds files its manifest does not list: {', '.join(extra)}")
    return manifest


def build_net(manifest: dict, encoder_dir: Path) -> TwoTowerModel:
    """The network of an export: encoder from ``encoder/``, every other weight from towers.safetensors."""
    net_config = manifest["config"]["model"]["net"]
    text = {**net_config.get("text", {}), "pretrained_path": str(encoder_dir)}
    settings = {k: net_config[k] for k in NET_SETTINGS if k in net_config}
    net = TwoTowerModel(manifest["num_items"], text=text, embedding_cache_dir=None, **settings)
    towers = load_file(str(encoder_dir.parent / fmt.TOWERS))
    result = net.load_state_dict(towers, strict=False)
    not_loaded = [k for k in result.missing_keys if not k.startswith(fmt.ENCODER_PREFIX)]
    if not_loaded or result.unexpected_keys:
        raise fmt.ExportError(
            f"{fmt.TOWERS} does not fit the model of the manifest (missing {not_loaded[:5]}, "
            f"unexpected {result.unexpected_keys[:5]})"
        )
    return net.eval()


def load_export(directory: Path | str) -> ExportBundle:
    """Load an export directory (verified first; only safetensors, parquet and JSON are read)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    encoder_dir = directory / fmt.ENCODER_DIR
    net = build_net(manifest, encoder_dir)
    text = load_file(str(directory / fmt.TEXT_EMBEDDINGS))
    net.item_text = text["items"]
    net.review_text = text["reviews"]
    ease_fusion = float(manifest.get("ranking", {}).get("ease_fusion", 0.0))
    ease_weights = None
    if ease_fusion > 0:
        if not (directory / fmt.EASE_WEIGHTS).is_file():
            raise fmt.ExportError(f"{directory}: its manifest ranks with EASE but {fmt.EASE_WEIGHTS} is missing")
        ease_weights = load_file(str(directory / fmt.EASE_WEIGHTS))["weights"]
    items = pd.read_parquet(directory / fmt.ITEMS)
    users = pd.read_parquet(directory / fmt.USERS)
    return ExportBundle(
        directory=directory,
        manifest=manifest,
        item_ids=pd.Index(items["item_id"].astype(str)),
        items=items,
        user_ids=pd.Index(users["user_id"].astype(str)),
        reviews=pd.read_parquet(directory / fmt.REVIEWS),
        item_vectors=load_file(str(directory / fmt.ITEM_EMBEDDINGS))["embeddings"],
        user_vectors=load_file(str(directory / fmt.USER_EMBEDDINGS))["embeddings"],
        net=net,
        tokenizer=load_tokenizer(encoder_dir),
        ease_weights=ease_weights,
        ease_fusion=ease_fusion,
    )
