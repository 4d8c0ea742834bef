"""Add items to an export without retraining: a growing catalog's new items, placed by their text.

A new item's vector is the item tower's on its document alone, without an item-id embedding:
what training with ``id_dropout`` teaches the tower to produce for items it has no id row for. Its
rows in every catalog-sized table of the export (the item-id embeddings of both towers, the item
biases of the rating head, the EASE matrix of a fused export) are zeros: an unknown item, rated as
the average one, with no co-occurrence. Known users' vectors do not change; they can be
recommended the new items at once, and new users' reviews and queries can name them.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from recsys.data.tokenization import TokenizedTexts
from recsys.export import format as fmt
from recsys.export.reader import load_export
from recsys.export.writer import publish_atomically, snippet

log = logging.getLogger(__name__)
# The export's tables with one row per catalog item (beside item_embeddings and the item texts).
CATALOG_ROWS = ("item_bias.weight", "item_tower.id_embedding.weight", "user_tower.item_embedding.weight")


def add_items(export: Path | str, documents: pd.DataFrame, out: Path | str, overwrite: bool = False,
              skip_empty: bool = False) -> Path:
    """Write to ``out`` the export at ``export`` with the items of ``documents`` (columns
    ``item_id``, ``document``) appended to its catalog; ``out`` may be ``export`` itself with
    ``overwrite`` (replaced atomically). Ids already in the catalog and repeated ids are refused;
    so are empty documents, or, with ``skip_empty``, left out with a warning."""
    bundle = load_export(export)
    documents = documents.astype({"item_id": str, "document": str}).reset_index(drop=True)
    empty = documents["document"].str.strip() == ""
    if skip_empty and empty.any():
        log.warning("Left out %d of %d new items that have no text to place them by, e.g. %r",
                    int(empty.sum()), len(documents), documents["item_id"][empty].iloc[0])
        documents = documents[~empty].reset_index(drop=True)
    _check(documents, bundle.item_ids)
    net = bundle.net
    max_tokens = int(bundle.config["data"].get("item_max_tokens", 256))
    rows = bundle.tokenizer(documents["document"].tolist(), truncation=True, max_length=max_tokens)["input_ids"]
    tokens = TokenizedTexts.from_rows(rows, int(bundle.tokenizer.pad_token_id or 0))
    new_texts = net.encoder.encode(tokens, pretrained=True)
    new_vectors = net.item_tower.cold_vectors(tokens, new_texts).float()

    source = Path(export)

    def write(directory: Path) -> None:
        shutil.copytree(source, directory, dirs_exist_ok=True)
        grown = len(bundle.item_ids) + len(documents)
        save_file({"embeddings": torch.cat([bundle.item_vectors, new_vectors]).contiguous()},
                  str(directory / fmt.ITEM_EMBEDDINGS))
        text = load_file(str(source / fmt.TEXT_EMBEDDINGS))
        text["items"] = torch.cat([text["items"].float(), new_texts]).to(text["items"].dtype).contiguous()
        save_file(text, str(directory / fmt.TEXT_EMBEDDINGS))
        towers = load_file(str(source / fmt.TOWERS))
        for name in CATALOG_ROWS:
            if name in towers:
                table = towers[name]
                towers[name] = torch.cat([table, table.new_zeros((len(documents), *table.shape[1:]))]).contiguous()
        save_file(towers, str(directory / fmt.TOWERS))
        if bundle.ease_weights is not None:
            weights = torch.zeros(grown, grown, dtype=bundle.ease_weights.dtype)
            weights[: len(bundle.item_ids), : len(bundle.item_ids)] = bundle.ease_weights
            save_file({"weights": weights}, str(directory / fmt.EASE_WEIGHTS))
        added = pd.DataFrame({"item_id": documents["item_id"], "snippet": documents["document"].map(snippet),
                              "train_count": 0})
        pd.concat([bundle.items, added.astype(bundle.items.dtypes.to_dict())], ignore_index=True).to_parquet(
            directory / fmt.ITEMS, index=False)
        manifest = dict(bundle.manifest)
        manifest["num_items"] = grown
        manifest["added_items"] = [*manifest.get("added_items", []), {
            "count": len(documents), "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}]
        manifest["files"] = fmt.checksums(directory)
        (directory / fmt.MANIFEST).write_text(json.dumps(manifest, indent=2))

    published = publish_atomically(out, write, overwrite)
    log.info("Added %d items to %s: %d items in %s", len(documents), source, len(bundle.item_ids) + len(documents),
             published)
    return published


def _check(documents: pd.DataFrame, catalog: pd.Index) -> None:
    if documents.empty:
        raise ValueError("no items to add: the items file holds no rows")
    known = documents["item_id"][documents["item_id"].isin(catalog)]
    if len(known):
        raise ValueError(f"{len(known)} item ids are already in the export's catalog, e.g. {known.iloc[0]!r}; "
                         "add only new items")
    repeated = documents["item_id"][documents["item_id"].duplicated()]
    if len(repeated):
        raise ValueError(f"item id {repeated.iloc[0]!r} is given more than once")
    empty = documents["item_id"][documents["document"].str.strip() == ""]
    if len(empty):
        raise ValueError(f"{len(empty)} items have no text to place them by, e.g. {empty.iloc[0]!r}: a new item "
                         "is recommended by its document alone (title, brand, categories or description); "
                         "map more fields, or leave them out (on_bad_line=skip)")
