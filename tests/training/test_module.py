from functools import partial

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from recsys.data.datamodule import ReviewDataModule
from recsys.data.sources import DatasetFiles
from recsys.data.splits import SplitSpec
from recsys.models.two_tower import TwoTowerModel
from recsys.training.module import TwoTowerModule
from tests.conftest import TINY_BERT, review, tiny_reviews, write_lines


def tiny_setup(files, data_dir, cache, trainable_layers=1, seed=0, review_encoder="frozen", **data):
    pl.seed_everything(seed, workers=True)
    dm = ReviewDataModule(dataset=files, data_dir=data_dir, cache_dir=cache, split=SplitSpec(seed=0),
                          batch_size=8, eval_batch_size=16, num_negatives=2, item_max_tokens=32,
                          review_max_tokens=32, seed=seed, **data)
    dm.prepare_data()
    dm.setup("fit")
    net = TwoTowerModel(dm.num_items, text={"trainable_layers": trainable_layers, "bf16": False}, dim=16,
                        user={"pooling": "attention", "review_encoder": review_encoder}, head={"hidden": 32},
                        encoder_config=dict(TINY_BERT))
    module = TwoTowerModule(net, loss={"retrieval": "softmax"}, optimizer=partial(torch.optim.AdamW, lr=3e-3),
                            encoder_lr=1e-3, ks=(1, 5))
    return dm, module


def trainer(epochs: int) -> pl.Trainer:
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      deterministic=True)


def test_training_lowers_the_loss(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path)
    module.attach(dm.catalog())
    batch = dm.collator("train")(list(range(len(dm.data.pairs["train"]))))
    module.eval()
    with torch.no_grad():
        before = float(module.model_step(batch)["loss"])
    trainer(epochs=15).fit(module, dm)
    module.eval()
    with torch.no_grad():
        after = float(module.model_step(batch)["loss"])
    assert after < 0.8 * before


def test_same_seed_same_metrics(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    results = []
    for _ in range(2):
        dm, module = tiny_setup(files, data_dir, tmp_path)
        fit = trainer(epochs=2)
        fit.fit(module, dm)
        results.append(fit.test(module, dm, verbose=False)[0])
    assert results[0] == pytest.approx(results[1], abs=1e-6)
    assert {"test/rmse", "test/mae", "test/recall@5", "test/ndcg@1", "test/mrr@5"} <= set(results[0])
    # What model.monitor may name (checked before a run) is what an evaluation logs.
    assert set(results[0]) == set(TwoTowerModule.evaluation_metric_names("test", (5, 1)))


def test_weight_averaging_callbacks_are_refused_with_a_message(tiny_dataset, tmp_path):
    ema = getattr(pl.callbacks, "EMAWeightAveraging", None)
    if ema is None:
        pytest.skip("this Lightning has no WeightAveraging callbacks (added in 2.5)")
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path)
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    fit = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, callbacks=[ema(decay=0.9)])
    with pytest.raises(ValueError, match="EMAWeightAveraging is not supported.*remove it from callbacks"):
        fit.fit(module, dm)
    # Refused at setup: before any step, so the weights are untouched.
    assert fit.global_step == 0
    assert all(torch.equal(p, before[name]) for name, p in module.named_parameters())


def test_target_review_never_reaches_the_user_tower(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=0)
    module.attach(dm.catalog())
    module.eval()
    pairs = dm.data.pairs["train"]
    batch = dm.collator("train")(list(range(len(pairs))))
    with torch.no_grad():
        before = module.net.user_vectors(batch)
        # Scramble the embedding of each pair's own review, one pair at a time: its user vector
        # must not move (other pairs of the same user may, since that review is in their history).
        for row, review in enumerate(pairs.review.tolist()):
            saved = module.net.review_text[review].clone()
            module.net.review_text[review] = 100.0
            assert torch.allclose(module.net.user_vectors(batch)[row], before[row], atol=1e-6)
            module.net.review_text[review] = saved
    # And the check can fail: scrambling a review that is in the history moves the vector.
    history_review = int(batch.history_reviews[0][batch.history_mask[0]][0])
    module.net.review_text[history_review] = 100.0
    with torch.no_grad():
        assert not torch.allclose(module.net.user_vectors(batch)[0], before[0], atol=1e-3)


def test_a_module_says_what_to_attach_before_its_catalog_or_teacher_is_read(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path / "cache", trainable_layers=0)
    with pytest.raises(RuntimeError, match=r"no catalog: call attach\(datamodule.catalog\(\)\) first"):
        module.attached_catalog()
    module.attach(dm.catalog())
    assert module.attached_catalog().num_items == dm.num_items
    # Neither distillation nor fusion: no teacher is fitted, and asking for one says when it is.
    with pytest.raises(RuntimeError, match=r"no EASE teacher: attach\(\) fits one when model.module.loss.distill"):
        module.fitted_teacher()


def test_optimizer_has_separate_encoder_learning_rate(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path)
    fit = trainer(epochs=1)
    fit.fit(module, dm)
    groups = {g["name"]: g for g in fit.optimizers[0].param_groups}
    encoder_params = {id(p) for p in module.net.encoder.parameters() if p.requires_grad}
    assert {id(p) for p in groups["encoder"]["params"]} == encoder_params
    assert groups["encoder"]["initial_lr"] == pytest.approx(1e-3)
    assert groups["rest"]["initial_lr"] == pytest.approx(3e-3)


def test_embedding_tables_get_their_own_decay_and_learning_rate(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path)
    module.embedding_weight_decay, module.embedding_lr = 0.0, 0.05
    fit = trainer(epochs=1)
    fit.fit(module, dm)
    groups = {g["name"]: g for g in fit.optimizers[0].param_groups}
    ids = {id(p) for p in groups["embeddings"]["params"]}
    assert id(module.net.item_tower.id_embedding.weight) in ids
    assert id(module.net.item_bias.weight) not in ids  # a 1-d bias keeps the shared decay
    assert groups["embeddings"]["weight_decay"] == 0.0 and groups["embeddings"]["initial_lr"] == pytest.approx(0.05)
    assert groups["rest"]["weight_decay"] > 0


def test_logq_correction_applies_to_sampled_negatives_only(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=0)
    module.attach(dm.catalog())
    module.eval()
    # A batch of the configured size: a batch of every pair would hold every item almost surely,
    # and there would be no sampling to correct.
    batch = dm.collator("train")(list(range(dm.batch_size)))
    losses = {}
    with torch.no_grad():
        users = module.net.user_vectors(batch)
        items = module.net.item_vectors(batch.batch_items)
        for retrieval in ("softmax", "catalog_softmax"):
            for logq in (False, True):
                module.loss_config.retrieval, module.loss_config.logq_correction = retrieval, logq
                losses[retrieval, logq] = float(module.retrieval_loss(batch, users, items))
    # In-batch negatives are sampled by popularity: the correction changes the loss.
    assert abs(losses["softmax", True] - losses["softmax", False]) > 1e-4
    # Every catalog item is a candidate, nothing is sampled: nothing to correct.
    assert losses["catalog_softmax", True] == losses["catalog_softmax", False]


def test_logq_correction_is_the_log_probability_that_an_item_is_a_batch_candidate(tmp_path):
    # Items of skewed popularity: item k is reviewed by about 60 / (k + 1) of 60 users.
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, 31)
    rows = []
    for u in range(60):
        for k, item in enumerate(rng.choice(30, size=5, replace=False, p=weights / weights.sum())):
            rows.append(review(f"U{u}", f"I{item}", rating=5.0, t=86_400 * (u * 10 + k + 1)))
    files = DatasetFiles(name="skewed", subdir="skewed", reviews="reviews_skewed.json.gz")
    write_lines(tmp_path / "data" / "skewed" / files.reviews, rows)
    dm, module = tiny_setup(files, tmp_path / "data", tmp_path / "cache", trainable_layers=0)
    module.attach(dm.catalog())
    collate = dm.collator("train")
    pairs, batch_size, batches = len(dm.data.pairs["train"]), 16, 3000
    present = np.zeros(dm.num_items)
    for _ in range(batches):  # batches as a shuffled loader deals them
        batch = collate(rng.choice(pairs, size=batch_size, replace=False).tolist())
        present[batch.batch_items.numpy()] += 1
    observed = present / batches  # share of batches that hold the item as a candidate
    batch.batch_items = torch.arange(dm.num_items)  # q of every item, for the last batch's B and N
    corrected = torch.exp(module.candidate_log_q(batch)).numpy()
    popularity = module.item_popularity.numpy()
    expected_count = batch_size * (popularity + batch.negative_slot.shape[1] / dm.num_items)

    def spread(estimate):  # logQ matters up to a constant: the spread of log(estimate / observed)
        log_ratio = np.log(estimate / observed)
        return log_ratio.max() - log_ratio.min()

    # The correction is the inclusion probability itself, not only proportional to it.
    assert np.abs(corrected / observed - 1).max() < 0.15
    assert spread(corrected) < 0.25
    # Popularity alone misses the uniform negatives; the expected count misses that a batch
    # holds each distinct item once, however often it is drawn.
    assert spread(popularity) > 1.5
    assert spread(expected_count) > 0.6


def test_a_relevance_threshold_counts_only_well_rated_held_out_items_for_every_model(tmp_path):
    from recsys.baselines.ease import EASE
    from recsys.benchmarking.evaluation import evaluate_scorer, network_scorer
    from recsys.training.ranking import ranking_metrics

    # 16 users x 6 reviews: validation holds users whose held-out ratings are all below 4, all at
    # or above it, and both.
    files = DatasetFiles(name="tiny", subdir="tiny", reviews="reviews_tiny.json.gz")
    write_lines(tmp_path / "data" / "tiny" / files.reviews, tiny_reviews(num_users=16, num_items=12, per_user=6))
    dm, module = tiny_setup(files, tmp_path / "data", tmp_path, trainable_layers=0, relevance_min_rating=4.0)
    pairs = dm.data.pairs["val"]
    well_rated = set(zip(pairs.user[pairs.rating >= 4].tolist(), pairs.item[pairs.rating >= 4].tolist(),
                         strict=True))
    relevant = dm.held_out_items("val")
    assert {(u, i) for u in range(dm.num_users) for i in relevant.items_of(u).tolist()} == well_rated
    assert 0 < len(well_rated) < len(pairs)  # the threshold drops some held-out items here
    fit = trainer(epochs=1)
    fit.fit(module, dm)
    logged = fit.callback_metrics  # the last (only) validation's
    # Users whose held-out items are all rated below the threshold have nothing to find: not ranked.
    assert int(logged["val/ranked_users"]) == len({u for u, _ in well_rated}) < len(np.unique(pairs.user))
    users = np.unique(pairs.user)
    module.eval()
    with torch.no_grad():
        scores = network_scorer(module, dm)(users)
    top = scores.masked_fill(torch.from_numpy(dm.data.train_items.rows(users)), float("-inf")).topk(5).indices
    expected = ranking_metrics(top, users, relevant, (1, 5))
    assert float(logged["val/recall@5"]) == pytest.approx(expected["recall@5"], abs=1e-6)
    every_item = ranking_metrics(top, users, dm.data.held_out_items("val"), (1, 5))
    assert expected["recall@5"] != pytest.approx(every_item["recall@5"])
    # The baselines' (and benchmark's) evaluation uses the same relevant items.
    benchmark = evaluate_scorer(network_scorer(module, dm), None, dm, "val", ks=(1, 5), curve_k=5)
    assert benchmark["val/recall@5"] == pytest.approx(expected["recall@5"], abs=1e-6)
    ease = EASE(l2=2.0)
    ease.fit(dm)
    ease_metrics = evaluate_scorer(ease.user_scores, None, dm, "val", ks=(1, 5), curve_k=5)
    ease_top = ease.user_scores(users).masked_fill(torch.from_numpy(dm.data.train_items.rows(users)),
                                                   float("-inf")).topk(5).indices
    assert ease_metrics["val/ndcg@5"] == pytest.approx(ranking_metrics(ease_top, users, relevant, (1, 5))["ndcg@5"])
