"""DDP on CPU (gloo, 2 processes): the same code path as a single-process run, and validation metrics
that equal a single-process evaluation of the same weights (each user counted once)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recsys.data.batches import PairIndexDataset
from recsys.data.distributed import UserShardSampler
from recsys.models.two_tower import TwoTowerModel
from recsys.training.module import TwoTowerModule
from tests.conftest import REPO_ROOT, TINY_BERT, script_env

# Same weights, same inputs: only float summation order may differ (thread counts, reduction order).
RMSE_TOLERANCE = 1e-5
RANKING_TOLERANCE = 1e-6


def test_user_shards_cover_every_pair_once_and_keep_users_whole():
    pair_users = np.array([0, 1, 1, 2, 3, 3, 3, 4, 5, 5])
    dataset = PairIndexDataset(len(pair_users))
    shards = [list(UserShardSampler(dataset, pair_users, 3, rank)) for rank in range(3)]
    assert sorted(sum(shards, [])) == list(range(len(pair_users)))  # no padding, no repeats
    users_per_shard = [set(pair_users[s]) for s in shards]
    assert all(a.isdisjoint(b) for i, a in enumerate(users_per_shard) for b in users_per_shard[i + 1:])
    assert [len(s) for s in shards] == [4, 3, 3] and len(UserShardSampler(dataset, pair_users, 3, 0)) == 4


class SummingStrategy:
    """A stand-in for a 2-process strategy: reduce adds the other process's sums and records the
    device of what it was given (NCCL reduces only tensors on the GPU)."""

    def __init__(self, other: list[float]):
        self.other, self.devices = other, []

    def reduce(self, tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        self.devices.append(tensor.device)
        if tensor.device.type == "meta":  # no values to add: only the device is under test
            return torch.zeros(tensor.shape, dtype=tensor.dtype)
        return tensor + torch.tensor(self.other, dtype=tensor.dtype, device=tensor.device)


def tiny_module() -> TwoTowerModule:
    net = TwoTowerModel(5, text={"trainable_layers": 0, "bf16": False}, dim=8, head={"hidden": 8},
                        encoder_config=dict(TINY_BERT))
    return TwoTowerModule(net, ks=(1,))


def test_ranking_metrics_over_processes_weigh_each_user_once():
    module = tiny_module()
    # This process: 3 users, recall 0.5; the other: 1 user, recall 1.0 (sums: recall x users, users).
    strategy = SummingStrategy(other=[1.0, 1.0])
    module.trainer = SimpleNamespace(strategy=strategy)
    merged = module._mean_over_processes({"recall@1": 0.5, "ranked_users": 3.0})
    assert merged == pytest.approx({"recall@1": (0.5 * 3 + 1.0) / 4, "ranked_users": 4.0})
    assert strategy.devices == [torch.device("cpu")]


def test_ranking_metric_sums_are_reduced_on_the_module_device():
    module = tiny_module().to("meta")  # any device but the CPU's: where a GPU run's tensors would be
    strategy = SummingStrategy(other=[0.0, 0.0])
    module.trainer = SimpleNamespace(strategy=strategy)
    module._mean_over_processes({"recall@1": 0.5, "ranked_users": 3.0})
    assert strategy.devices == [torch.device("meta")]


@pytest.mark.slow
def test_ddp_two_processes_validation_equals_single_process(tmp_path: Path, real_data_dir: Path):
    env = script_env(tmp_path / "cache", real_data_dir)
    run = tmp_path / "ddp"
    command = [sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "trainer=ddp", "trainer.devices=2",
               "trainer.accelerator=cpu", "data=magazine", "data.item_max_tokens=64", "data.review_max_tokens=64",
               "model.text.trainable_layers=0", "trainer.max_epochs=1", "test=false", "logger=csv",
               f"hydra.run.dir={run}"]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "MEMBER: 2/2" in output  # two processes joined the process group
    # Every epoch metric is synchronised (Lightning warned of each one that was not).
    assert "sync_dist=True" not in output
    distributed = json.loads((run / "metrics.json").read_text())

    checkpoint = run / "checkpoints" / "last.ckpt"
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"] == 0
    evaluate = [sys.executable, str(REPO_ROOT / "scripts" / "evaluate.py"), f"ckpt={checkpoint}", "split=val",
                f"hydra.run.dir={tmp_path / 'eval'}"]
    result = subprocess.run(evaluate, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    single = json.loads((run / "metrics_val_last.json").read_text())

    assert distributed["val/ranked_users"] == single["val/ranked_users"] > 100  # every user once
    for key in ("val/rmse", "val/mae"):
        assert distributed[key] == pytest.approx(single[key], abs=RMSE_TOLERANCE), key
    for key in ("val/recall@10", "val/ndcg@10", "val/precision@5", "val/mrr@20", "val/hit_rate@20"):
        assert distributed[key] == pytest.approx(single[key], abs=RANKING_TOLERANCE), key
