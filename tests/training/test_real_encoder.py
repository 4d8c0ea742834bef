"""A few training steps with the real MiniLM on a slice of real data lower the loss."""

from functools import partial

import numpy as np
import pytest
import torch

from recsys.data.datamodule import ReviewDataModule
from recsys.data.splits import SplitSpec
from recsys.models.two_tower import TwoTowerModel
from recsys.training.module import TwoTowerModule
from tests.conftest import MAGAZINE

pytestmark = pytest.mark.slow


def test_real_minilm_steps_lower_the_loss(real_data_dir, tmp_path):
    torch.manual_seed(0)
    dm = ReviewDataModule(dataset=MAGAZINE, data_dir=real_data_dir, cache_dir=tmp_path, split=SplitSpec(seed=0),
                          item_max_tokens=64, review_max_tokens=64, num_negatives=2, batch_size=32)
    dm.prepare_data()
    dm.setup("fit")
    net = TwoTowerModel(dm.num_items, text={"trainable_layers": 1}, dim=64, embedding_cache_dir=None)
    module = TwoTowerModule(net, loss={"retrieval": "softmax"}, optimizer=partial(torch.optim.AdamW, lr=2e-3),
                            encoder_lr=1e-4)
    module.attach(dm.catalog())
    module.net.head.set_rating_prior(module.catalog.mean_rating)
    collate = dm.collator("train")
    batches = [collate(list(range(start, start + 32))) for start in range(0, 32 * 4, 32)]
    optimizer = torch.optim.AdamW([
        {"params": [p for p in net.encoder.parameters() if p.requires_grad], "lr": 1e-4},
        {"params": [p for n, p in net.named_parameters() if p.requires_grad and not n.startswith("item_tower.encoder")],
         "lr": 2e-3},
    ])
    encoder_before = next(p for p in net.encoder.parameters() if p.requires_grad).detach().clone()

    def mean_loss() -> float:
        module.eval()
        with torch.no_grad():
            return float(np.mean([float(module.model_step(b)["loss"]) for b in batches]))

    before = mean_loss()
    module.train()
    for _ in range(5):
        for batch in batches:
            optimizer.zero_grad()
            module.model_step(batch)["loss"].backward()
            optimizer.step()
    after = mean_loss()
    assert after < 0.85 * before
    assert not torch.equal(next(p for p in net.encoder.parameters() if p.requires_grad), encoder_before)
    assert net.encoder.flops_counter > 0
