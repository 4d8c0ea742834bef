"""The EASE teacher and the distillation loss that uses it."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from recsys.baselines.ease import EASE
from recsys.benchmarking.evaluation import evaluate_scorer, network_scorer
from recsys.data.negatives import UserItemSets
from recsys.models.losses import LossConfig, distillation_loss
from recsys.training.module import TwoTowerModule
from recsys.training.ranking import SPARSE_EASE_ITEMS, ease_scores, fused_scores, ranking_metrics, standardised
from recsys.training.teacher import EaseTeacher
from tests.baselines.test_baselines import fake_datamodule
from tests.training.test_module import tiny_setup, trainer

TRAIN = [(0, 0, 5), (0, 1, 5), (1, 1, 4), (1, 2, 3), (2, 0, 5), (2, 3, 2), (3, 2, 4), (3, 3, 5)]


def test_teacher_scores_equal_the_ease_baseline():
    dm = fake_datamodule(TRAIN, 4, 5)
    baseline = EASE(l2=2.0)
    baseline.fit(dm)
    teacher = EaseTeacher(dm.data.train_items, l2=2.0)
    users = np.array([3, 0, 2])
    rows = torch.from_numpy(dm.data.train_items.rows(users))
    assert teacher.scores(rows).numpy() == pytest.approx(baseline.user_scores(users).numpy(), abs=1e-6)
    # Item 4 has no training interaction: nothing points to it.
    assert teacher.scores(torch.from_numpy(dm.data.train_items.rows(np.arange(4))))[:, 4].abs().max() == 0


def test_teacher_sees_only_the_sets_it_is_given():
    train = UserItemSets.from_pairs(np.array([0, 0, 1]), np.array([0, 1, 1]), 2, 3)
    with_held_out = UserItemSets.from_pairs(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 2]), 2, 3)
    rows = torch.from_numpy(train.rows(np.array([0, 1])))
    scores = EaseTeacher(train, l2=1.0).scores(rows)
    assert not torch.allclose(scores, EaseTeacher(with_held_out, l2=1.0).scores(rows))
    # Item 2 was never in training: with the training sets only, it cannot score.
    assert scores[:, 2].abs().max() == 0


def test_teacher_refuses_large_catalogs():
    huge = UserItemSets.from_pairs(np.array([0]), np.array([0]), 1, 50_000)
    with pytest.raises(ValueError, match="distill_weight=0 and model.module.ease_fusion=0"):
        EaseTeacher(huge)


def test_ease_scores_of_a_large_catalog_are_a_sparse_product_equal_to_the_dense_one():
    torch.manual_seed(0)
    for num_items in (SPARSE_EASE_ITEMS - 1, SPARSE_EASE_ITEMS + 500):
        weights = torch.randn(num_items, num_items) / 30
        rows = torch.zeros(64, num_items, dtype=torch.bool)
        rows.scatter_(1, torch.randint(0, num_items, (64, 7)), True)
        rows[3] = False  # a user without training items
        dense = rows.float() @ weights
        scores = ease_scores(rows, weights)
        assert scores.shape == (64, num_items) and not scores.is_sparse
        if num_items < SPARSE_EASE_ITEMS:
            assert torch.equal(scores, dense)  # the product the README's figures were measured with
        else:
            assert torch.allclose(scores, dense, atol=1e-5) and not torch.equal(scores, dense)
        assert scores[3].abs().max() == 0


def test_the_teacher_never_builds_the_users_by_items_matrix():
    # It built that matrix (as int64 search keys and float64 rows: 1.6 GB for 100,000 users x 1,000
    # items; 5 GB at the peak of a 30,000 x 5,000 run) to take its Gram matrix.
    script = """
import numpy as np, resource
from recsys.data.negatives import UserItemSets
from recsys.training.teacher import EaseTeacher
rng = np.random.default_rng(0)
sets = UserItemSets.from_pairs(rng.integers(0, 100_000, 500_000), rng.integers(0, 1_000, 500_000), 100_000, 1_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
teacher = EaseTeacher(sets, l2=200.0)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, float(teacher.weights.abs().sum()))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    grown_mb, weight_sum = result.stdout.split()
    assert int(grown_mb) < 200, result.stdout  # the dense matrix alone would be 800 MB as float64
    assert float(weight_sum) > 0


def test_standardised_rows():
    scores = torch.tensor([[1.0, 2.0, 3.0, 100.0], [0.5, 0.5, -1.0, 2.0]])
    candidates = torch.tensor([[True, True, True, False], [True, True, True, True]])
    z = standardised(scores, candidates)
    assert z[0].tolist() == pytest.approx([-(1.5 ** 0.5), 0.0, 1.5 ** 0.5, 0.0], abs=1e-6)
    assert float(z[1].mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(z[1].pow(2).mean()) == pytest.approx(1.0, abs=1e-5)
    # Scaling the raw scores does not change them (what makes one temperature fit any l2).
    assert standardised(10 * scores, candidates).flatten().tolist() == pytest.approx(z.flatten().tolist(), abs=1e-5)


def test_distillation_loss_by_hand():
    student = torch.tensor([[0.0, 1.0, 5.0]])
    teacher = torch.tensor([[2.0, 0.0, -7.0]])
    candidates = torch.tensor([[True, True, False]])
    # Item 2 is no candidate: p_teacher = softmax(2, 0), log p_student = log_softmax(0, 1).
    p = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    log_q = torch.log_softmax(torch.tensor([0.0, 1.0]), 0)
    assert float(distillation_loss(student, teacher, candidates)) == pytest.approx(float(-(p * log_q).sum()), rel=1e-6)
    # Minimal (zero gradient) where the student equals the teacher on the candidates.
    matched = torch.tensor([[2.0, 0.0, 40.0]], requires_grad=True)
    distillation_loss(matched, teacher, candidates).backward()
    assert matched.grad.abs().max() < 1e-6


def test_distillation_leaves_out_users_without_candidates():
    student = torch.tensor([[0.0, 1.0, 5.0], [3.0, 2.0, 1.0]], requires_grad=True)
    teacher = torch.tensor([[2.0, 0.0, -7.0], [1.0, 1.0, 1.0]])
    candidates = torch.tensor([[True, True, False], [False, False, False]])
    loss = distillation_loss(student, teacher, candidates)
    assert loss.item() == pytest.approx(distillation_loss(student[:1], teacher[:1], candidates[:1]).item())
    loss.backward()
    assert torch.isfinite(student.grad).all() and student.grad[1].abs().max() == 0
    assert distillation_loss(student[1:], teacher[1:], candidates[1:]).item() == 0.0


def test_distillation_settings_are_checked():
    with pytest.raises(ValueError, match="distill_weight"):
        LossConfig(distill_weight=-1.0)
    with pytest.raises(ValueError, match="distill_temperature"):
        LossConfig(distill_temperature=0.0)


def _agreement(module, batch) -> tuple[float, float]:
    """Mean over the batch's pairs of the teacher's z-score at the student's top unseen item,
    and the best it can be (at the teacher's own top item)."""
    with torch.no_grad():
        users = module.net.user_vectors(batch)
        scores = users @ module.net.catalog_vectors(module.catalog.num_items).T
    known = module.training_items_of(batch)
    teacher = standardised(module.teacher.scores(known), ~known)
    top = scores.masked_fill(known, float("-inf")).argmax(1)
    best = teacher.masked_fill(known, float("-inf")).max(1).values
    return float(teacher.gather(1, top[:, None]).mean()), float(best.mean())


def test_distillation_teaches_the_student_the_teachers_ranking(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=0)
    module.loss_config = LossConfig(rating_weight=0, like_weight=0, retrieval_weight=0, distill_weight=1.0)
    module.attach(dm.catalog())
    train = dm.data.pairs["train"]
    only_training = EaseTeacher(UserItemSets.from_pairs(train.user, train.item, dm.num_users, dm.num_items))
    assert torch.equal(module.teacher.weights, only_training.weights)  # no held-out pair in the teacher
    batch = dm.collator("train")(list(range(len(dm.data.pairs["train"]))))
    module.eval()
    before, best = _agreement(module, batch)
    with torch.no_grad():
        out = module.model_step(batch)
    assert float(out["loss"]) == pytest.approx(float(out["distill_loss"]))
    trainer(epochs=40).fit(module, dm)
    module.eval()
    after, _ = _agreement(module, batch)
    assert after > before + 0.5 and after > 0.95 * best


def test_catalog_softmax_and_distillation_share_one_catalog_encoding(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=0)
    module.loss_config = LossConfig(retrieval="catalog_softmax", distill_weight=1.0)
    module.attach(dm.catalog())
    batch = dm.collator("train")(list(range(len(dm.data.pairs["train"]))))
    encoded_sizes = []
    item_vectors = module.net.item_vectors

    def counting(items, *args, **kwargs):
        encoded_sizes.append(len(items))
        return item_vectors(items, *args, **kwargs)

    module.net.item_vectors = counting
    module.eval()
    with torch.no_grad():
        out = module.model_step(batch)
    # The batch's distinct items once, and the whole catalog once (not once per loss).
    assert sorted(encoded_sizes) == sorted([len(batch.batch_items), dm.num_items])
    catalog = module.catalog_view(batch)
    assert out["distill_loss"].item() == pytest.approx(module.distill_loss(out["users"], catalog).item())
    assert out["retrieval_loss"].item() == pytest.approx(
        module.retrieval_loss(batch, out["users"], None).item(), rel=1e-6)


def test_fused_scores_order_as_cosine_plus_the_rescaled_teacher():
    generator = torch.Generator().manual_seed(0)
    cosines = torch.randn(3, 7, generator=generator)
    teacher = 0.01 * torch.randn(3, 7, generator=generator)
    candidates = torch.ones(3, 7, dtype=torch.bool)
    candidates[0, [1, 4]] = False
    fused = fused_scores(cosines, teacher, candidates, 0.5)
    for row in range(3):
        keep = candidates[row]
        cosine, scores = cosines[row, keep], teacher[row, keep]
        spread = cosine.std(unbiased=False)
        by_hand = cosine + 0.5 * spread / scores.std(unbiased=False) * scores
        # z-scores are an increasing affine map of the hand-computed sum: the same order.
        difference = fused[row, keep] * spread - by_hand
        assert float(difference.max() - difference.min()) < 1e-5
    assert fused[0, [1, 4]].abs().max() == 0
    assert torch.equal(fused_scores(cosines, teacher, candidates, 0.0), standardised(cosines, candidates))


def test_ease_fusion_ranks_held_out_users_by_cosine_and_teacher(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    _, untrained = tiny_setup(files, data_dir, tmp_path, trainable_layers=0)
    with pytest.raises(ValueError, match="ease_fusion"):
        TwoTowerModule(untrained.net, ease_fusion=-1.0)
    metrics = {}
    for weight in (0.0, 0.7):
        dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=0)
        module.ease_fusion = weight
        module.loss_config = LossConfig(retrieval="softmax", teacher_l2=2.0)  # no distillation
        seen = {}
        rank = module.rank

        def keeping_the_vectors(stage, rank=rank, seen=seen, module=module):
            seen.update(module._user_vectors)
            return rank(stage)

        module.rank = keeping_the_vectors
        logged = trainer(epochs=0).test(module, dm, verbose=False)[0]
        assert (module.teacher is not None) == (weight > 0)  # fitted for fusion, not only for distillation
        users = np.array(sorted(seen))
        vectors = torch.stack([seen[u] for u in users.tolist()]).float()
        scores = vectors @ module.net.catalog_vectors(dm.num_items).float().T
        if weight:
            baseline = EASE(l2=2.0)
            baseline.fit(dm)
            ease, known = baseline.user_scores(users), torch.from_numpy(dm.data.train_items.rows(users))
            for row in range(len(users)):
                keep = ~known[row]
                cosine, teacher = scores[row, keep], ease[row, keep]
                scores[row, keep] = cosine + weight * cosine.std(unbiased=False) / teacher.std(unbiased=False) * teacher
        top = scores.masked_fill(torch.from_numpy(dm.data.train_items.rows(users)), float("-inf")).topk(5).indices
        expected = ranking_metrics(top, users, dm.held_out_items("test"), (1, 5))
        assert logged["test/recall@5"] == pytest.approx(expected["recall@5"], abs=1e-6)
        assert logged["test/ndcg@5"] == pytest.approx(expected["ndcg@5"], abs=1e-6)
        # The benchmark's and cross-validation's evaluation ranks as the module does.
        benchmark = evaluate_scorer(network_scorer(module, dm), None, dm, "test", ks=(1, 5), curve_k=5)
        assert benchmark["test/recall@5"] == pytest.approx(expected["recall@5"], abs=1e-6)
        metrics[weight] = logged["test/ndcg@5"]
    assert metrics[0.0] != metrics[0.7]  # the teacher changes the order here


@pytest.mark.parametrize("weight", [0.0, 0.7])
def test_the_runs_example_recommendations_show_the_score_they_are_ranked_by(tiny_dataset, tmp_path, weight):
    from recsys.training.report import example_recommendations

    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=0)
    module.ease_fusion = weight
    module.loss_config = LossConfig(retrieval="softmax", teacher_l2=2.0)
    trainer(epochs=0).test(module, dm, verbose=False)  # attaches the catalog and fits the teacher
    table = example_recommendations(module, dm, k=3)
    data = dm.data
    users = data.user_ids.get_indexer(table["user_id"].unique())
    assert len(users) == 3 and len(table) == 9
    with torch.no_grad():
        user_vectors = module.net.user_vectors(dm.history_batch(users))
        item_vectors = module.net.catalog_vectors(dm.num_items)
        scores = module.ranking_scores(user_vectors, users, item_vectors)
    for row, user in enumerate(users):
        shown = table[table["user_id"] == data.user_ids[user]]
        items = data.item_ids.get_indexer(shown["item_id"])
        assert not set(items) & set(data.train_items.items_of(user))
        assert shown["score"].tolist() == pytest.approx(scores[row, items].tolist(), abs=1e-4)
        assert shown["cosine"].tolist() == pytest.approx((item_vectors[items] @ user_vectors[row]).tolist(), abs=1e-4)
        assert shown["score"].is_monotonic_decreasing
        unseen = np.setdiff1d(np.arange(dm.num_items), data.train_items.items_of(user))
        assert shown["score"].iloc[0] == pytest.approx(float(scores[row, unseen].max()), abs=1e-4)
    # Fused with EASE, the score is not the cosine (cosine ranking: it is).
    assert (table["score"] == table["cosine"]).all() == (weight == 0)


def test_example_recommendations_of_a_catalog_smaller_than_k_list_each_unseen_item_once(tiny_dataset, tmp_path):
    from recsys.training.report import example_recommendations

    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=0)
    trainer(epochs=0).test(module, dm, verbose=False)
    assert dm.num_items < 10  # the run's reports ask for a top-10: they failed on a shape mismatch
    table = example_recommendations(module, dm, k=10)
    data = dm.data
    for user_id, shown in table.groupby("user_id", sort=False):
        user = data.user_ids.get_loc(user_id)
        unseen = set(range(dm.num_items)) - set(data.train_items.items_of(user))
        assert sorted(data.item_ids.get_indexer(shown["item_id"])) == sorted(unseen)  # no training item, none twice
        assert shown["rank"].tolist() == list(range(1, len(unseen) + 1))
