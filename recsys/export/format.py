"""The export directory format: file names, manifest, checksums.

An export directory holds only safetensors, parquet and JSON (and the Hugging Face encoder in
safetensors), never pickles:

- ``manifest.json``: format and recsys versions, run config, sizes, metrics, sha256 of every file.
- ``item_embeddings.safetensors``: ``embeddings`` [num_items, dim], L2-normalised float32.
- ``items.parquet``: ``item_id``, ``snippet``, ``train_count``.
- ``user_embeddings.safetensors``: ``embeddings`` [num_users, dim] of known users.
- ``users.parquet``: ``user_id``; ``reviews.parquet``: the training reviews of known users
  (``user_id, item_id, rating, snippet``), for explanations.
- ``towers.safetensors``: every network weight but the encoder's (towers, head, biases, the frozen
  pretrained copy of fine-tuned layers).
- ``text_embeddings.safetensors``: pretrained embeddings of item documents (``items``) and training
  reviews (``reviews``), which the user tower and the explanations read.
- ``encoder/``: the (fine-tuned) encoder and its tokenizer in Hugging Face format.
- ``ease.safetensors`` (only for a model trained with ``model.module.ease_fusion`` > 0): ``weights``
  [num_items, num_items], the EASE item-item matrix that ranking fuses with the cosine; the
  manifest's ``ranking`` then holds ``{"ease_fusion": weight}``.

Format versions: 1, the files above but ``ease.safetensors``; 2 adds it (and the manifest's
``ranking``), which a reader of version 1 must not ignore: an export is written as version 2 only
when it holds the EASE weights, so that older readers refuse it rather than rank by cosine alone.
"""

from __future__ import annotations

from pathlib import Path

from recsys.file_digest import file_sha256

# The network an export holds: the baselines (mf, ease, bias, ...) have no towers with which to
# place new users, new items or free-text queries, which serving needs.
EXPORTABLE_NET = "recsys.models.two_tower.TwoTowerModel"

FORMAT_VERSION = 2  # the newest version this recsys reads and writes
COSINE_FORMAT_VERSION = 1  # an export without ease.safetensors, readable by older recsys
MANIFEST = "manifest.json"
ITEM_EMBEDDINGS = "item_embeddings.safetensors"
USER_EMBEDDINGS = "user_embeddings.safetensors"
ITEMS = "items.parquet"
USERS = "users.parquet"
REVIEWS = "reviews.parquet"
TOWERS = "towers.safetensors"
TEXT_EMBEDDINGS = "text_embeddings.safetensors"
EASE_WEIGHTS = "ease.safetensors"
ENCODER_DIR = "encoder"
ENCODER_PREFIX = "item_tower.encoder.bert."


class ExportError(RuntimeError):
    """An export directory is missing, incomplete, tampered with, or of an unknown format."""


def exportable_net(net_target: str | None) -> bool:
    """Whether a run whose ``model.net._target_`` is ``net_target`` can be exported for serving."""
    return net_target == EXPORTABLE_NET


def checksums(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory`` but the manifest, by relative POSIX path."""
    return {
        path.relative_to(directory).as_posix(): file_sha256(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
