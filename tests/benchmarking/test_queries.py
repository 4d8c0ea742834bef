"""The free-text query benchmark's ranks and table."""

import pandas as pd
import torch

from recsys.benchmarking.queries import TEXT_ONLY, benchmark_table, target_ranks


def test_target_ranks_count_the_items_scored_above_the_target():
    scores = torch.tensor([[0.1, 0.5, 0.5, 0.7], [0.9, 0.2, 0.1, 0.0]])
    # A tie with the target does not push it down.
    assert target_ranks(scores, torch.tensor([1, 2])).tolist() == [1, 2]


def test_the_table_gives_each_weight_as_a_ratio_of_the_towers_alone():
    frame = pd.DataFrame([
        {"query": "summary", "text weight": w, "queries": 100, "hit@10": hit, "MRR": 0.1, "median rank": 40.0}
        for w, hit in ((0.0, 0.10), (2.0, 0.25), (TEXT_ONLY, 0.20))
    ])
    lines = benchmark_table({"test": frame}, default_weight=2.0).splitlines()
    assert lines[2:] == [
        "| test | summary | 0 | 100 | 0.100 | 1.00x | 0.100 | 40 |",
        "| test | summary | 2 (default) | 100 | 0.250 | 2.50x | 0.100 | 40 |",
        "| test | summary | text only | 100 | 0.200 | 2.00x | 0.100 | 40 |",
    ]
