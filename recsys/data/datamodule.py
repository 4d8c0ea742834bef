"""The LightningDataModule: owns the raw data, its caches, the split and the batches."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, DistributedSampler
from transformers import PreTrainedTokenizerBase

from recsys.data.batches import HistoryBatch, PairCollator, PairIndexDataset, pad_histories
from recsys.data.catalog import Catalog
from recsys.data.distributed import UserShardSampler
from recsys.data.errors import ChangedDataError
from recsys.data.negatives import UserItemSets, sample_negatives
from recsys.data.prepared import PreparedData, prepare_dataset
from recsys.data.sources import DatasetFiles
from recsys.data.splits import SplitSpec
from recsys.data.tokenization import TokenCache, TokenizedTexts, token_counter
from recsys.data.validation import BadLinePolicy
from recsys.pretrained import load_tokenizer
from recsys.settings import checked_whole_number

log = logging.getLogger(__name__)
T = TypeVar("T")

EVAL_NEGATIVES_SEED_OFFSET = 1_000_003
FINGERPRINTS_KEY = "data_fingerprints"
RESUME_ON_CHANGED_DATA = "Resuming on it would validate and test on interactions that the model has trained on."


def check_relevance_min_rating(value: object, key: str) -> None:
    """Refuse a relevance threshold (set at ``key``) that is not None or a rating from 1 to 5."""
    rating = isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value <= 5
    if value is not None and not rating:
        raise ValueError(f"{key}={value!r} is not allowed: ratings are read as 1 to 5 stars; give a value from 1 "
                         "to 5 (e.g. 4: liked items), or null for every held-out item")


class ReviewDataModule(pl.LightningDataModule):
    """Review data for the two-tower model.

    ``prepare_data`` reads the raw files, writes the parsed tables, the split and the token
    caches under ``cache_dir``; ``setup`` loads them (fast on every later run) and builds the
    user histories, item documents and token tables. Batches are :class:`PairBatch`.

    Args:
        dataset: which raw files to read.
        data_dir: folder holding the dataset folders (``None``: ``$RECSYS_DATA_DIR``, else ``./data``).
        cache_dir: folder for parsed tables, splits and token caches.
        split: how to split into train/val/test.
        tokenizer_path: local Hugging Face folder of the encoder's tokenizer (``None``: bundled MiniLM).
        on_bad_line: ``error`` or ``skip``.
        max_reviews: most recent training reviews kept in a user's history.
        review_max_tokens / item_max_tokens: token budgets of a review and of an item document.
        num_negatives: sampled negative items per pair.
        batch_size / eval_batch_size: pairs per training / evaluation batch.
        num_workers: DataLoader workers (0 keeps batching in the training process).
        seed: seed of training negatives (validation/test negatives are fixed from it).
        relevance_min_rating: count only held-out items rated at least this as relevant in the
            ranking metrics of every model (None: all held-out items).
    """

    def __init__(
        self,
        dataset: DatasetFiles,
        data_dir: str | Path | None = None,
        cache_dir: str | Path = ".cache/recsys",
        split: SplitSpec | None = None,
        tokenizer_path: str | Path | None = None,
        on_bad_line: str = "error",
        max_reviews: int = 20,
        review_max_tokens: int = 128,
        item_max_tokens: int = 256,
        num_negatives: int = 4,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        relevance_min_rating: float | None = None,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.data_dir = data_dir
        self.cache_dir = Path(cache_dir).expanduser()
        self.split = split or SplitSpec()
        self.tokenizer_path = tokenizer_path
        self.on_bad_line = BadLinePolicy.parse(on_bad_line)
        for name, value, least in (("max_reviews", max_reviews, 0), ("num_negatives", num_negatives, 0),
                                   ("num_workers", num_workers, 0), ("review_max_tokens", review_max_tokens, 1),
                                   ("item_max_tokens", item_max_tokens, 1), ("batch_size", batch_size, 1),
                                   ("eval_batch_size", eval_batch_size, 1)):
            checked_whole_number(f"data.{name}", value, least=least)
        check_relevance_min_rating(relevance_min_rating, "data.relevance_min_rating")
        self.max_reviews = max_reviews
        self.review_max_tokens = review_max_tokens
        self.item_max_tokens = item_max_tokens
        self.num_negatives = num_negatives
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.relevance_min_rating = relevance_min_rating
        # The training negatives' generator lives here, not in the loader, so that its state is
        # saved in checkpoints (state_dict) and a resumed run draws the same negatives.
        self._train_rng = np.random.default_rng(seed)
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self.data: PreparedData | None = None
        self._item_tokens: TokenizedTexts | None = None
        self._review_tokens: TokenizedTexts | None = None
        self.timings: dict[str, float] = {}

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer_path)
        return self._tokenizer

    def _build(self) -> None:
        limit = self.tokenizer.model_max_length  # the encoder's positions; a huge sentinel where unset
        for name, value in (("item_max_tokens", self.item_max_tokens), ("review_max_tokens", self.review_max_tokens)):
            if value > limit:
                raise ValueError(f"data.{name}={value} is more than the encoder reads: {limit} tokens; give at most "
                                 f"{limit}")
        started = time.perf_counter()
        data = prepare_dataset(
            self.dataset, self.data_dir, self.cache_dir, self.split, self.on_bad_line,
            self.item_max_tokens, token_counter(self.tokenizer),
        )
        self.timings["prepare_s"] = time.perf_counter() - started
        started = time.perf_counter()
        cache = TokenCache(self.tokenizer, self.cache_dir / "tokens")
        self._item_tokens = cache.tokenize(data.item_documents["document"].tolist(), self.item_max_tokens)
        self._review_tokens = cache.tokenize(data.review_texts, self.review_max_tokens)
        self.timings["tokenize_s"] = time.perf_counter() - started
        self.data = data

    def prepare_data(self) -> None:
        """Parse, split and tokenize once (rank 0), writing every cache to disk. Lightning calls it
        again at each ``fit`` / ``validate`` / ``test``; a module that holds its data already skips it."""
        if self.data is None:
            self._build()

    def setup(self, stage: str | None = None) -> None:
        """Load the prepared data (from the caches written by ``prepare_data``)."""
        if self.data is None:
            self._build()

    @property
    def prepared(self) -> PreparedData:
        """The parsed, split data; an error that says what to call where ``setup`` has not run."""
        return _set_up(self.data)

    @property
    def item_tokens(self) -> TokenizedTexts:
        """The item documents' tokens, one row per item index."""
        return _set_up(self._item_tokens)

    @property
    def review_tokens(self) -> TokenizedTexts:
        """The training reviews' tokens, one row per training review."""
        return _set_up(self._review_tokens)

    @property
    def num_users(self) -> int:
        return self.prepared.num_users

    @property
    def num_items(self) -> int:
        return self.prepared.num_items

    @property
    def train_items(self) -> UserItemSets:
        return self.prepared.train_items

    def item_train_counts(self) -> np.ndarray:
        return self.prepared.item_train_counts()

    def held_out_items(self, split: str) -> UserItemSets:
        """The items that ranking metrics count as relevant on ``split``, per user: its held-out
        items, only those rated at least ``relevance_min_rating`` when that is set."""
        return self.prepared.held_out_items(split, self.relevance_min_rating)

    def catalog(self) -> Catalog:
        """The item catalog and training-review tokens that the model caches encodings of."""
        data = self.prepared
        return Catalog(
            num_users=data.num_users,
            num_items=data.num_items,
            item_tokens=self.item_tokens,
            review_tokens=self.review_tokens,
            train_items=data.train_items,
            item_train_counts=data.item_train_counts(),
            mean_rating=float(data.pairs["train"].rating.mean()),
        )

    def history_batch(self, users: np.ndarray) -> HistoryBatch:
        """The training histories (most recent ``max_reviews``) of user indices ``users``."""
        data = self.prepared
        rows = [data.histories.of(int(u), self.max_reviews) for u in users]
        return pad_histories(rows, data.pairs["train"].item, data.pairs["train"].rating, users)

    def collator(self, split: str) -> PairCollator:
        """The collator of ``split``; evaluation splits use negatives fixed once from the seed."""
        data = self.prepared
        pairs = data.pairs[split]
        fixed = None
        if split != "train":
            rng = np.random.default_rng(self.seed + EVAL_NEGATIVES_SEED_OFFSET)
            fixed = sample_negatives(pairs.user, pairs.item, self.num_negatives, data.train_items, rng)
        return PairCollator(
            pairs=pairs,
            histories=data.histories,
            review_items=data.pairs["train"].item,
            review_ratings=data.pairs["train"].rating,
            train_items=data.train_items,
            item_tokens=self.item_tokens,
            num_negatives=self.num_negatives,
            max_reviews=self.max_reviews,
            seed=self.seed,
            fixed_negatives=fixed,
            rng=self._train_rng if split == "train" else None,
        )

    def state_dict(self) -> dict[str, Any]:
        """The training negatives' generator state and the data's fingerprints (Lightning stores
        them in checkpoints)."""
        state: dict[str, Any] = {"train_negatives_rng": self._train_rng.bit_generator.state}
        if self.data is not None:
            state[FINGERPRINTS_KEY] = dict(self.data.fingerprints)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the training negatives' generator from a checkpoint (in place: loaders keep it),
        after checking that the checkpoint was trained on this data."""
        self.check_trained_on(state_dict, "The checkpoint to resume", RESUME_ON_CHANGED_DATA)
        if "train_negatives_rng" in state_dict:
            self._train_rng.bit_generator.state = state_dict["train_negatives_rng"]

    def check_trained_on(self, state_dict: dict[str, Any], checkpoint: str | Path, consequence: str) -> bool:
        """Raise :class:`ChangedDataError` (saying ``consequence``) when ``state_dict``, this class's
        entry of a checkpoint, records other data than this module has read: another split would
        hold out interactions that the model trained on. False where the checkpoint records none
        (written before recsys kept it)."""
        saved = state_dict.get(FINGERPRINTS_KEY)
        if saved is None or self.data is None:
            return False
        if saved != self.data.fingerprints:
            raise ChangedDataError(self.dataset.name, checkpoint, saved, self.data.fingerprints, consequence)
        return True

    def _process_shard(self) -> tuple[int, int]:
        """(rank, number of processes) of the running trainer; (0, 1) outside a distributed run."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        pairs = self.prepared.pairs[split]
        dataset = PairIndexDataset(len(pairs))
        rank, world = self._process_shard()
        sampler = None
        if world > 1:
            # Given as DistributedSampler instances, so that Lightning does not inject its own.
            sampler = (DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=self.seed)
                       if split == "train" else UserShardSampler(dataset, pairs.user, world, rank))
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            collate_fn=self.collator(split),
            num_workers=self.num_workers,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)


def _set_up(value: T | None) -> T:
    if value is None:
        raise RuntimeError("ReviewDataModule is not set up: call prepare_data() and setup() first")
    return value
