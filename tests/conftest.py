"""Shared fixtures: tiny hand-written review files, the real data folder, the bundled tokenizer."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from recsys.benchmarking.harness import configured_dataset
from recsys.data.sources import DatasetFiles

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# The shipped dataset configs' files (conf/data/*.yaml), as the scripts read them.
MUSICAL_INSTRUMENTS = configured_dataset("musical_instruments")
MAGAZINE = configured_dataset("magazine")


@pytest.fixture(scope="session", autouse=True)
def run_folders_outside_the_repository(tmp_path_factory):
    """Runs that a test starts without naming a folder (scripts, benchmark drivers) write under a
    temporary ``RECSYS_OUTPUT_DIR``, not into the repository's ``outputs/``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECSYS_OUTPUT_DIR", str(tmp_path_factory.mktemp("outputs")))
        yield


def wrong_kind_refusals(build, settings: list[tuple[str, object]], overrides: list[str]) -> list[str]:
    """What goes wrong when ``build(overrides + [key=bad])`` is given, for each ``(key, default)``
    of ``settings``, a word (``abc``), and ``true`` where a number belongs: each must raise a
    ValueError (directly, or as the cause of Hydra's instantiation error) whose message begins
    ``key=<the value> is not allowed``. Returns one line per setting that did otherwise."""
    wrong = []
    for key, default in settings:
        is_number = isinstance(default, (int, float)) and not isinstance(default, bool)
        for bad in ["abc", *(["true"] if is_number else [])]:
            shown = repr(True) if bad == "true" else repr(bad)
            try:
                build([*overrides, f"{key}={bad}"])
            except Exception as error:  # noqa: BLE001 - the cause is checked below
                cause = error
                while cause.__cause__ is not None and not isinstance(cause, ValueError):
                    cause = cause.__cause__
                if not (isinstance(cause, ValueError) and str(cause).startswith(f"{key}={shown} is not allowed")):
                    wrong.append(f"{key}={bad}: {type(cause).__name__}: {cause}")
            else:
                wrong.append(f"{key}={bad}: accepted")
    return wrong


def config_settings(node: dict, prefix: str = "", skip: frozenset[str] = frozenset()) -> list[tuple[str, object]]:
    """(dotted key, default) of every setting a user may override in a config (a plain dict):
    its leaves, lists included, less Hydra's ``_keys_``, interpolations and the keys in ``skip``."""
    settings = []
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if key.startswith("_") or key in skip or (isinstance(value, str) and "${" in value):
            continue
        if isinstance(value, dict):
            settings += config_settings(value, path, skip)
        else:
            settings.append((path, value))
    return settings


def review(user: str, item: str, rating: float = 5.0, t: int = 0, text: str | None = None,
           summary: str | None = None) -> dict:
    """A 2014-style review object."""
    return {
        "reviewerID": user,
        "asin": item,
        "overall": rating,
        "reviewText": text if text is not None else f"{user} on {item}",
        "summary": summary if summary is not None else f"about {item}",
        "unixReviewTime": t,
    }


def write_lines(path: Path, lines: list, compress: bool | None = None) -> Path:
    """Write objects (as JSON), strings or raw bytes one per line; gzip when the name ends in .gz."""
    compress = path.suffix == ".gz" if compress is None else compress
    payload = b"".join(
        (line if isinstance(line, bytes) else (line if isinstance(line, str) else json.dumps(line)).encode())
        + b"\n"
        for line in lines
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)
    return path


def tiny_reviews(num_users: int = 6, num_items: int = 8, per_user: int = 5) -> list[dict]:
    """Each user reviews ``per_user`` items on distinct days, with distinct texts."""
    rows = []
    for u in range(num_users):
        for k in range(per_user):
            item = (u + 2 * k) % num_items
            rows.append(review(f"U{u}", f"I{item}", rating=1 + (u + k) % 5, t=86_400 * (10 * u + k + 1),
                               text=f"user {u} writes review {k} about item {item}",
                               summary=f"headline {u}-{k}"))
    return rows


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> tuple[DatasetFiles, Path]:
    """A tiny dataset folder (6 users x 5 reviews, 8 items) and its DatasetFiles."""
    files = DatasetFiles(name="tiny", subdir="tiny", reviews="reviews_tiny.json.gz")
    write_lines(tmp_path / "data" / "tiny" / files.reviews, tiny_reviews())
    return files, tmp_path / "data"


def script_env(cache: Path | None = None, data_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a script that a test runs: offline W&B and Hugging Face hub, the test's
    cache folder and data folder (a subprocess does not see where :func:`real_data_dir` found it)."""
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", **extra}
    if cache is not None:
        env["RECSYS_CACHE_DIR"] = str(cache)
    if data_dir is not None:
        env["RECSYS_DATA_DIR"] = str(data_dir)
    return env


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real review data (``$RECSYS_DATA_DIR`` or ``../shared/data``); skips when absent."""
    candidate = Path(os.environ.get("RECSYS_DATA_DIR", SHARED_DATA))
    if not (candidate / MUSICAL_INSTRUMENTS.subdir).is_dir():
        pytest.skip(f"real data not found at {candidate} (set RECSYS_DATA_DIR)")
    return candidate


@pytest.fixture(scope="session")
def tokenizer():
    """The bundled MiniLM tokenizer (local files, no network)."""
    from transformers import AutoTokenizer

    from recsys.pretrained import bundled_encoder_path

    return AutoTokenizer.from_pretrained(str(bundled_encoder_path()))


TINY_BERT = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=512)


@pytest.fixture
def tiny_bert_config():
    """A 3-layer, 32-wide BERT config (random weights) with the MiniLM vocabulary size."""
    from transformers import BertConfig

    return BertConfig(**TINY_BERT)


def build_tiny_export(root, item: dict | None = None, epochs: int = 3, ease_fusion: float = 0.0,
                      user: dict | None = None, encoder: dict | None = None):
    """Train a tiny model for ``epochs`` on a tiny dataset under ``root`` and export it:
    ``(export_dir, module, datamodule)``; ``item`` and ``user`` override the towers' settings,
    ``ease_fusion`` the module's (hybrid ranking with EASE), ``encoder`` the encoder's config
    fields (default :data:`TINY_BERT`)."""
    from functools import partial

    import pytorch_lightning as pl
    import torch

    from recsys.data.datamodule import ReviewDataModule
    from recsys.data.splits import SplitSpec
    from recsys.export import write_export
    from recsys.models.two_tower import TwoTowerModel
    from recsys.training.module import TwoTowerModule

    files = DatasetFiles(name="tiny", subdir="tiny", reviews="reviews_tiny.json.gz")
    write_lines(root / "data" / "tiny" / files.reviews, tiny_reviews(num_users=12, num_items=10, per_user=5))
    pl.seed_everything(0)
    datamodule = ReviewDataModule(dataset=files, data_dir=root / "data", cache_dir=root / "cache",
                                  split=SplitSpec(seed=0), batch_size=8, num_negatives=2, item_max_tokens=32,
                                  review_max_tokens=32, max_reviews=4)
    datamodule.prepare_data()
    datamodule.setup("fit")
    net_config = {"text": {"trainable_layers": 1, "bf16": False}, "dim": 16, "head": {"hidden": 32},
                  "user": {"pooling": "attention", **(user or {})}, **({"item": item} if item else {})}
    net = TwoTowerModel(datamodule.num_items, encoder_config=dict(encoder or TINY_BERT), **net_config)
    module = TwoTowerModule(net, loss={"retrieval": "softmax"}, optimizer=partial(torch.optim.AdamW, lr=3e-3),
                            ease_fusion=ease_fusion)
    pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0).fit(module, datamodule)
    config = {"model": {"net": net_config}, "data": {"max_reviews": 4, "review_max_tokens": 32, "item_max_tokens": 32}}
    out = write_export(module.eval(), datamodule, root / "export", config, metrics={"test/recall@10": 0.5})
    return out, module, datamodule


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """A tiny model trained for a few epochs and exported: ``(export_dir, module, datamodule)``."""
    return build_tiny_export(tmp_path_factory.mktemp("tiny_export"))


@pytest.fixture(scope="session")
def tuned_reviews_export(tmp_path_factory):
    """The same, its user tower reading the reviews through the fine-tuned encoder
    (``review_encoder=finetune``)."""
    return build_tiny_export(tmp_path_factory.mktemp("tuned_reviews_export"), user={"review_encoder": "finetune"})


@pytest.fixture(scope="session")
def fused_export(tmp_path_factory):
    """The same, ranking by cosine fused with EASE (``ease_fusion`` 0.7)."""
    return build_tiny_export(tmp_path_factory.mktemp("fused_export"), ease_fusion=0.7)


def recorded_progress_bars(monkeypatch) -> list[dict]:
    """The progress bars that recsys draws from now on (:mod:`recsys.progress`), each as a dict of its
    ``description``, ``total`` and how far it was ``advanced``, instead of drawn."""
    from recsys import progress

    bars: list[dict] = []

    class RecordingProgress:
        def __init__(self, *columns):
            bars.append({"advanced": 0})

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def add_task(self, description, total):
            bars[-1].update(description=description, total=total)
            return 0

        def advance(self, task, count):
            bars[-1]["advanced"] += count

    monkeypatch.setattr(progress, "Progress", RecordingProgress)
    return bars
