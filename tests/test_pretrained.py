"""Reading the encoder's folder: the tokenizer must come with a vocabulary."""

from pathlib import Path

import pytest
from transformers import BertConfig, BertModel

from recsys.data.datamodule import ReviewDataModule
from recsys.data.sources import DatasetFiles
from recsys.pretrained import load_tokenizer
from tests.conftest import TINY_BERT


def test_a_folder_without_tokenizer_files_is_refused_instead_of_reading_every_word_as_unknown(tmp_path: Path):
    # transformers builds a tokenizer of the special tokens alone from such a folder, without a word:
    # a run trained on [UNK]s.
    BertModel(BertConfig(**TINY_BERT)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=rf"^{tmp_path} holds no tokenizer vocabulary \(its tokenizer has \d tokens, "
                       r"the special ones, and would read every word as unknown\): save the encoder's tokenizer "
                       r"there too .* or set data.tokenizer_path"):
        load_tokenizer(tmp_path)
    datamodule = ReviewDataModule(DatasetFiles("tiny", "tiny", "reviews.json.gz"), tokenizer_path=tmp_path)
    with pytest.raises(ValueError, match="holds no tokenizer vocabulary"):
        datamodule.tokenizer  # noqa: B018 (the property loads it)


def test_the_bundled_tokenizer_and_a_saved_copy_read_words(tmp_path: Path):
    bundled = load_tokenizer(None)
    assert len(bundled) == 30522
    bundled.save_pretrained(tmp_path)
    BertModel(BertConfig(**TINY_BERT)).save_pretrained(tmp_path)
    copy = load_tokenizer(tmp_path)
    words = copy.tokenize("warm sounding guitar strings")
    assert words == bundled.tokenize("warm sounding guitar strings") and copy.unk_token not in words
