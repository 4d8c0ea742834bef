"""Review data: reading raw files, validation, splits, texts, tokenization, the DataModule."""

from recsys.data.batches import PairBatch
from recsys.data.datamodule import ReviewDataModule
from recsys.data.sources import DatasetFiles
from recsys.data.splits import SplitSpec

__all__ = ["DatasetFiles", "PairBatch", "ReviewDataModule", "SplitSpec"]
