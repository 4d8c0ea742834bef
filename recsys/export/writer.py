"""Write an export directory from a trained model, atomically."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file

import recsys
from recsys.data.datamodule import ReviewDataModule
from recsys.export import format as fmt
from recsys.models.text_encoder import quiet_transformers
from recsys.serving.backend_names import ONNX_FILE
from recsys.serving.text_backends import export_onnx
from recsys.settings import plain_config
from recsys.training.metrics_keys import CHECKPOINT_KEY, RATING_CHECKPOINT_KEY
from recsys.training.module import TwoTowerModule

log = logging.getLogger(__name__)
SNIPPET_CHARS = 200
USER_BATCH = 512
QUANTIZE_OPTIONS = (None, "int8")


def snippet(text: str) -> str:
    """``text`` on one line, cut to ``SNIPPET_CHARS`` characters (for the export's tables)."""
    text = " ".join(str(text).split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


@torch.no_grad()
def _write_contents(directory: Path, module: TwoTowerModule, datamodule: ReviewDataModule, config: dict,
                    metrics: dict, serving: ServingOptions, source: dict | None = None) -> None:
    net = module.net.eval()
    data = datamodule.prepared
    item_vectors = net.catalog_vectors(data.num_items).float().contiguous()
    users = np.arange(data.num_users)
    user_vectors = torch.cat([
        net.user_vectors(datamodule.history_batch(users[start : start + USER_BATCH]))
        for start in range(0, len(users), USER_BATCH)
    ]).float().contiguous()
    save_file({"embeddings": item_vectors}, str(directory / fmt.ITEM_EMBEDDINGS))
    save_file({"embeddings": user_vectors}, str(directory / fmt.USER_EMBEDDINGS))
    save_file({"items": net.item_text.contiguous(), "reviews": net.review_text.contiguous()},
              str(directory / fmt.TEXT_EMBEDDINGS))
    # clone(): the towers share the item-id table, and safetensors stores no shared memory.
    towers = {k: v.clone().contiguous() for k, v in net.state_dict().items() if not k.startswith(fmt.ENCODER_PREFIX)}
    save_file(towers, str(directory / fmt.TOWERS))

    pd.DataFrame({
        "item_id": data.item_ids.astype(str),
        "snippet": [snippet(d) for d in data.item_documents["document"]],
        "train_count": data.item_train_counts(),
    }).to_parquet(directory / fmt.ITEMS, index=False)
    pd.DataFrame({"user_id": data.user_ids.astype(str)}).to_parquet(directory / fmt.USERS, index=False)
    train = data.train_reviews
    pd.DataFrame({
        "user_id": train["user_id"].astype(str),
        "item_id": train["item_id"].astype(str),
        "rating": train["rating"].astype("float32"),
        "timestamp": train["timestamp"],
        "snippet": [snippet(s) for s in data.review_texts],
    }).to_parquet(directory / fmt.REVIEWS, index=False)

    ranking = {}
    if module.ease_fusion > 0:
        save_file({"weights": module.fitted_teacher().weights.float().contiguous()}, str(directory / fmt.EASE_WEIGHTS))
        ranking = {"ranking": {"ease_fusion": module.ease_fusion}}

    encoder_dir = directory / fmt.ENCODER_DIR
    with quiet_transformers():  # its "Writing model shards" bar over the one shard of a small encoder
        net.encoder.bert.save_pretrained(str(encoder_dir), safe_serialization=True)
        datamodule.tokenizer.save_pretrained(str(encoder_dir))
    if serving.onnx:
        export_onnx(net.encoder, directory / ONNX_FILE)

    manifest = {
        "format_version": fmt.FORMAT_VERSION if ranking else fmt.COSINE_FORMAT_VERSION,
        "recsys_version": recsys.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "dim": int(item_vectors.shape[1]),
        "num_items": int(data.num_items),
        "num_users": int(data.num_users),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        **({"source": source} if source else {}),
        "serving": {"text_backend": serving.text_backend(net.encoder.bf16)},
        # The data's rating scale: served ratings, given and predicted, are on it (the model's are stars).
        "rating_scale": _rating_scale(datamodule),
        **ranking,
        "files": fmt.checksums(directory),
    }
    (directory / fmt.MANIFEST).write_text(json.dumps(manifest, indent=2))


def _rating_scale(datamodule: ReviewDataModule) -> list[float]:
    scale = datamodule.dataset.review_fields.rating_scale
    return [scale.minimum, scale.maximum]


@dataclass(frozen=True)
class ServingOptions:
    """How the export encodes new texts: ``quantize`` (None or ``int8``) and ``onnx`` (also write
    ``encoder.onnx``). The manifest records the choice; ONNX wins when both are set."""

    quantize: str | None = None
    onnx: bool = False

    def __post_init__(self) -> None:
        if self.quantize not in QUANTIZE_OPTIONS:
            raise ValueError(f"export.quantize={self.quantize!r} is not allowed; use null or int8")

    def text_backend(self, bf16: bool) -> str:
        """The backend name that the manifest records: ``onnx``, ``int8``, else the run's ``bf16`` or ``fp32``."""
        if self.onnx:
            return "onnx"
        if self.quantize == "int8":
            return "int8"
        return "bf16" if bf16 else "fp32"


def write_export(module: TwoTowerModule, datamodule: ReviewDataModule, out: Path | str, config: dict,
                 metrics: dict | None = None, overwrite: bool = False, serving: ServingOptions | None = None,
                 source: dict | None = None) -> Path:
    """Write the export of a trained ``module`` (catalog attached) to ``out``; ``source``, where the
    weights come from (a checkpoint's path, epoch and step), is recorded in the manifest.

    Everything is written into a temporary directory next to ``out`` and renamed into place when
    complete: an interrupted export leaves nothing at ``out``, and an existing export there is
    replaced whole (``overwrite``) or not at all.
    """
    publish_atomically(
        out, lambda partial: _write_contents(partial, module, datamodule, config, metrics or {},
                                             serving or ServingOptions(), source), overwrite)
    log.info("Exported %d items and %d users to %s", datamodule.num_items, datamodule.num_users, out)
    return Path(out)


def publish_atomically(out: Path | str, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Run ``write`` on a temporary directory next to ``out`` and rename it to ``out`` when it returns.

    An interrupted write leaves nothing at ``out``; an existing directory there is replaced whole
    (``overwrite``) or not at all.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another out= or pass overwrite=true")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        write(partial)
        # mkdtemp makes a private folder; an export is meant to be read by the serving process.
        for path in [partial, *partial.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if out.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            retired.rmdir()
            out.rename(retired)
            partial.rename(out)
            shutil.rmtree(retired)
        else:
            partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


def recorded_test_metrics(ckpt: Path) -> dict[str, float]:
    """The test metrics that its run's ``metrics.json`` records for checkpoint ``ckpt``: those of
    the best checkpoint, or the rating checkpoint's RMSE and MAE; none for another checkpoint
    (``last.ckpt``), whose weights were not tested. (Runs older than these keys: the best's.)"""
    path = ckpt.parent.parent / "metrics.json"
    if not path.exists():
        return {}
    recorded = json.loads(path.read_text())
    if ckpt.name == recorded.get(RATING_CHECKPOINT_KEY):
        prefix = f"{RATING_CHECKPOINT_KEY}/"
        return {k.removeprefix(prefix): v for k, v in recorded.items() if k.startswith(prefix + "test/")}
    if recorded.get(CHECKPOINT_KEY, ckpt.name) != ckpt.name:
        log.info("%s holds no test metrics of %s (they are of %s)", path, ckpt.name, recorded[CHECKPOINT_KEY])
        return {}
    return {k: v for k, v in recorded.items() if k.startswith("test/")}


EXPORT_ON_CHANGED_DATA = "The export reads the data as it is now."


def export_checkpoint(ckpt: Path | str, out: Path | str, overwrite: bool = False,
                      serving: ServingOptions | None = None, paths: DictConfig | None = None) -> Path:
    """Export a checkpoint written by ``scripts/train.py`` (its data is prepared again from the
    run config stored in it, in this machine's ``paths`` where the run's folders are not here;
    the test metrics of the run are included when found)."""
    serving = serving or ServingOptions()  # checked before the slow part
    from recsys.training.checkpoints import checkpoint_datamodule, load_checkpoint_config
    from recsys.training.run import build_module

    ckpt = Path(ckpt)
    cfg, checkpoint = load_checkpoint_config(ckpt)
    net_target = OmegaConf.select(cfg, "model.net._target_")
    if not fmt.exportable_net(net_target):
        raise fmt.ExportError(
            f"{ckpt} holds a {str(net_target).rsplit('.', 1)[-1]}, not the two-tower model, so it cannot be "
            "exported: serving needs the two towers to place new users, new items and queries. Export a run of "
            f"model=two_tower (the default); evaluate this one with python scripts/evaluate.py ckpt={ckpt}")
    # Data changed since training is exported with a warning: users' histories are then the
    # training reviews of the data as it is now, which serving can use.
    datamodule = checkpoint_datamodule(cfg, checkpoint, ckpt, "test", consequence=EXPORT_ON_CHANGED_DATA,
                                       refuse_changed_data=False, paths=paths)
    module = build_module(cfg, datamodule)
    module.load_state_dict(checkpoint["state_dict"])
    module.attach(datamodule.catalog())
    metrics = recorded_test_metrics(ckpt)
    config = plain_config(cfg)
    source = {"checkpoint": str(ckpt.resolve()), "epoch": int(checkpoint.get("epoch", -1)),
              "global_step": int(checkpoint.get("global_step", -1))}
    return write_export(module, datamodule, out, config, metrics, overwrite, serving, source)
