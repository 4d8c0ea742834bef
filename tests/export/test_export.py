import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.data.negatives import UserItemSets
from recsys.export import ExportError, load_export, write_export
from recsys.export import format as fmt
from recsys.export.reader import ExportErrorMissing
from recsys.serving.recommender import Recommender, ReviewInput
from recsys.training.ranking import fused_scores, top_k_from_scores
from recsys.training.teacher import EaseTeacher
from tests.conftest import build_tiny_export


def copy_export(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(source, target)
    return target


def test_export_has_the_documented_files_and_manifest(tiny_export):
    out, module, datamodule = tiny_export
    manifest = json.loads((out / fmt.MANIFEST).read_text())
    assert manifest["format_version"] == fmt.COSINE_FORMAT_VERSION  # readable by older recsys
    assert "ranking" not in manifest and fmt.EASE_WEIGHTS not in manifest["files"]
    assert (manifest["num_items"], manifest["num_users"], manifest["dim"]) == (10, 12, 16)
    assert manifest["metrics"] == {"test/recall@10": 0.5}
    for name in (fmt.ITEM_EMBEDDINGS, fmt.USER_EMBEDDINGS, fmt.ITEMS, fmt.TOWERS, "encoder/config.json",
                 "encoder/model.safetensors", "encoder/tokenizer.json"):
        assert name in manifest["files"] and (out / name).is_file()
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt")) and not list(out.rglob("*.pkl"))
    bundle = load_export(out)
    assert torch.allclose(bundle.item_vectors.norm(dim=1), torch.ones(10), atol=1e-5)


def cosine_top_k(user_vectors, item_vectors, datamodule, k: int = 5) -> torch.Tensor:
    """Every user's top-k items by cosine, training items excluded (the in-memory reference)."""
    cosines = user_vectors @ item_vectors.T
    return top_k_from_scores(lambda start, stop: cosines[start:stop], np.arange(len(user_vectors)), k,
                             datamodule.train_items, 64, datamodule.num_items)


def served_top_k(recommender, datamodule, user_vectors, item_vectors, expected):
    """Every known user's served top-k: asserts it is ``expected`` [users, k] with the cosines of
    the in-memory vectors, and returns the answers."""
    answers = recommender.recommend_users(list(datamodule.data.user_ids), k=expected.shape[1])
    for user, answer in enumerate(answers):
        assert [datamodule.data.item_ids.get_loc(a.item_id) for a in answer] == expected[user].tolist()
        cosines = (user_vectors[user] @ item_vectors[expected[user]].T).tolist()
        assert [a.cosine for a in answer] == pytest.approx(cosines, abs=1e-5)
    return answers


def test_round_trip_gives_the_in_memory_top_k_and_scores(tiny_export):
    out, module, datamodule = tiny_export
    net = module.net.eval()
    users = np.arange(datamodule.num_users)
    with torch.no_grad():
        user_vectors = net.user_vectors(datamodule.history_batch(users))
        item_vectors = net.catalog_vectors(datamodule.num_items)
    expected = cosine_top_k(user_vectors, item_vectors, datamodule)
    recommender = Recommender.from_export(out, rerank_top=5)
    answers = served_top_k(recommender, datamodule, user_vectors, item_vectors, expected)
    for user, answer in zip(users, answers, strict=True):
        ids = [datamodule.data.item_ids.get_loc(a.item_id) for a in answer]
        history = datamodule.history_batch(np.array([user]))
        offset = net.user_offset(history.history_ratings, history.history_mask)
        with torch.no_grad():
            rating, like = net.score(user_vectors[user].expand(5, -1), item_vectors[ids], torch.tensor(ids),
                                     offset.expand(5))
        assert [a.predicted_rating for a in answer] == pytest.approx(rating.tolist(), abs=1e-3)
        assert [a.like_probability for a in answer] == pytest.approx(torch.sigmoid(like).tolist(), abs=1e-3)


def test_tampered_file_is_refused(tiny_export, tmp_path):
    out = copy_export(tiny_export[0], tmp_path)
    data = bytearray((out / fmt.ITEM_EMBEDDINGS).read_bytes())
    data[-1] ^= 0xFF
    (out / fmt.ITEM_EMBEDDINGS).write_bytes(bytes(data))
    with pytest.raises(ExportError, match="checksum mismatch.*item_embeddings.safetensors"):
        load_export(out)


def test_missing_file_is_refused(tiny_export, tmp_path):
    out = copy_export(tiny_export[0], tmp_path)
    (out / fmt.TOWERS).unlink()
    with pytest.raises(ExportError, match="missing files.*towers.safetensors"):
        load_export(out)
    shutil.rmtree(out / fmt.ENCODER_DIR)
    (out / fmt.MANIFEST).unlink()
    with pytest.raises(ExportError, match="no manifest.json"):
        load_export(out)


def test_a_training_run_given_as_an_export_names_the_export_command(tmp_path):
    from tests.training.test_checkpoints import fake_run

    run = fake_run(tmp_path / "2026-12-07_22-26-11")  # metrics.json names epoch03.ckpt as the one tested
    with pytest.raises(ExportError) as refused:
        load_export(run)
    assert str(refused.value) == (
        f"{run} is a training run, not an export: export its checkpoint first, e.g. python scripts/export.py "
        f"ckpt={run / 'checkpoints' / 'epoch03.ckpt'} out=exports/2026-12-07_22-26-11")
    (run / "metrics.json").unlink()  # then the first checkpoint there
    with pytest.raises(ExportError, match=r"ckpt=\S+/checkpoints/epoch03.ckpt out=exports/2026-12-07_22-26-11$"):
        load_export(run / "checkpoints")


def test_a_missing_export_says_where_it_was_looked_for_and_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExportErrorMissing) as refused:
        load_export("exports/mi")
    assert str(refused.value) == (
        f"No export directory at exports/mi (read from {tmp_path}): make one from a run's checkpoint with "
        "python scripts/export.py ckpt=<run>/checkpoints/<best>.ckpt out=exports/mi")
    with pytest.raises(ExportErrorMissing, match=f"^No export directory at {tmp_path / 'nope'}: make one"):
        load_export(tmp_path / "nope")  # an absolute path needs no working directory


def test_newer_format_version_is_refused(tiny_export, tmp_path):
    out = copy_export(tiny_export[0], tmp_path)
    manifest = json.loads((out / fmt.MANIFEST).read_text())
    manifest["format_version"] = fmt.FORMAT_VERSION + 1
    (out / fmt.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="newer than this recsys reads"):
        load_export(out)


def test_an_unlisted_file_is_refused(tiny_export, tmp_path):
    out = copy_export(tiny_export[0], tmp_path)
    (out / "extra.pkl").write_bytes(b"not ours")
    with pytest.raises(ExportError, match="does not list: extra.pkl"):
        load_export(out)


def test_interrupted_export_leaves_nothing_and_keeps_the_old_one(tiny_export, tmp_path, monkeypatch):
    _, module, datamodule = tiny_export
    import recsys.export.writer as writer

    calls = {"n": 0}
    real_save = writer.save_file

    def failing_save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(writer, "save_file", failing_save)
    config = {"model": {"net": {}}, "data": {}}
    with pytest.raises(OSError, match="simulated"):
        write_export(module, datamodule, tmp_path / "new", config)
    assert list(tmp_path.iterdir()) == []  # no export, no partial folder

    monkeypatch.setattr(writer, "save_file", real_save)
    old = write_export(module, datamodule, tmp_path / "old", config)
    before = {p.name: p.read_bytes() for p in old.iterdir() if p.is_file()}
    with pytest.raises(FileExistsError, match="overwrite"):
        write_export(module, datamodule, old, config)
    calls["n"] = 0
    monkeypatch.setattr(writer, "save_file", failing_save)
    with pytest.raises(OSError, match="simulated"):
        write_export(module, datamodule, old, config, overwrite=True)
    assert {p.name: p.read_bytes() for p in old.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_an_export_carries_the_test_metrics_of_its_own_checkpoint_only(tmp_path):
    from recsys.export.writer import recorded_test_metrics

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({
        "test/rmse": 0.96, "test/recall@10": 0.41, "val/rmse": 1.0, "train_minutes": 0.3,
        "rating_checkpoint/test/rmse": 0.91, "rating_checkpoint/test/mae": 0.61,
        "checkpoint": "epoch11.ckpt", "rating_checkpoint": "rating-epoch05.ckpt",
    }))
    assert recorded_test_metrics(run / "checkpoints" / "epoch11.ckpt") == {"test/rmse": 0.96, "test/recall@10": 0.41}
    assert recorded_test_metrics(run / "checkpoints" / "rating-epoch05.ckpt") == {"test/rmse": 0.91, "test/mae": 0.61}
    assert recorded_test_metrics(run / "checkpoints" / "last.ckpt") == {}  # never tested
    (run / "metrics.json").write_text(json.dumps({"test/rmse": 0.96, "val/rmse": 1.0}))  # an older run
    assert recorded_test_metrics(run / "checkpoints" / "epoch03.ckpt") == {"test/rmse": 0.96}
    assert recorded_test_metrics(tmp_path / "elsewhere" / "checkpoints" / "x.ckpt") == {}


def test_learned_item_pooling_travels_in_the_export(tmp_path):
    out, module, datamodule = build_tiny_export(tmp_path, item={"pooling": "attention"}, epochs=2)
    trained = module.net.item_tower.attention_pooling.score.weight
    assert trained.abs().sum() > 0  # training moved it off its zero start
    bundle = load_export(out)
    assert torch.equal(bundle.net.item_tower.attention_pooling.score.weight, trained)
    net = module.net.eval()
    with torch.no_grad():
        expected = net.catalog_vectors(datamodule.num_items)
        # The exported network reading the documents anew, as for items outside the catalog
        # (no id embedding), against the trained one's catalog path without its id embedding.
        ids, mask = datamodule.catalog().item_tokens.pad(list(range(datamodule.num_items)))
        cold = bundle.net.eval().item_tower(None, ids, mask)
        text_only = net.item_tower.projection(net.item_tower.text_embeddings(torch.arange(datamodule.num_items)))
    assert torch.allclose(bundle.item_vectors, expected, atol=1e-6)
    assert torch.nn.functional.cosine_similarity(cold, text_only).min() > 0.999


def test_a_distilbert_encoder_trains_exports_and_reads_new_texts_as_trained(tmp_path):
    # Another layout of BERT-family encoder (model.transformer.layer, no pooler) through training,
    # export (its encoder/ folder) and serving, where it encodes texts anew.
    distilbert = {"model_type": "distilbert", "vocab_size": 30522, "dim": 32, "n_layers": 3, "n_heads": 2,
                  "hidden_dim": 64}
    out, module, datamodule = build_tiny_export(tmp_path, encoder=distilbert, epochs=2)
    encoder = module.net.encoder
    assert type(encoder.bert).__name__ == "DistilBertModel"
    tuned = next(encoder.layers[2].parameters())
    assert not torch.equal(tuned, next(encoder.pretrained_top[0].parameters()))  # the top layer trained
    bundle = load_export(out)
    assert type(bundle.net.encoder.bert).__name__ == "DistilBertModel"
    net = module.net.eval()
    with torch.no_grad():
        ids, mask = datamodule.catalog().item_tokens.pad(list(range(datamodule.num_items)))
        cold = bundle.net.eval().item_tower(None, ids, mask)
        text_only = net.item_tower.projection(net.item_tower.text_embeddings(torch.arange(datamodule.num_items)))
    assert torch.nn.functional.cosine_similarity(cold, text_only).min() > 0.999
    recommender = Recommender.from_export(out)
    answer = recommender.recommend_reviews([ReviewInput(item_id=str(datamodule.prepared.item_ids[0]), rating=5,
                                                        text="great strings, warm tone")], k=3)
    assert len(answer) == 3 and all(a.item_id != str(datamodule.prepared.item_ids[0]) for a in answer)


def test_the_package_names_resolve_to_their_modules_on_first_use():
    # recsys.export imports its submodules lazily (so that the error type does not load torch):
    # every public name must still resolve, and a misspelt one must fail as a missing attribute.
    import importlib

    import recsys.export as package

    assert sorted(package.__all__) == sorted(package._HOMES)
    for name, home in package._HOMES.items():
        assert getattr(package, name) is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError, match="no attribute 'load_exports'"):
        package.load_exports  # noqa: B018


def test_an_ease_fused_export_serves_the_ranking_its_model_was_tested_by(fused_export):
    out, module, datamodule = fused_export
    manifest = json.loads((out / fmt.MANIFEST).read_text())
    assert manifest["format_version"] == fmt.FORMAT_VERSION and manifest["ranking"] == {"ease_fusion": 0.7}
    bundle = load_export(out)
    # EASE of the training interactions only, as the module's teacher.
    train = datamodule.data.pairs["train"]
    only_training = UserItemSets.from_pairs(train.user, train.item, datamodule.num_users, datamodule.num_items)
    assert torch.equal(bundle.ease_weights, EaseTeacher(only_training, module.loss_config.teacher_l2).weights)

    net = module.net.eval()
    users = np.arange(datamodule.num_users)
    with torch.no_grad():
        user_vectors = net.user_vectors(datamodule.history_batch(users))
        item_vectors = net.catalog_vectors(datamodule.num_items)
        scores = module.ranking_scores(user_vectors, users, item_vectors)
    expected = top_k_from_scores(lambda a, b: scores[a:b], users, 5, datamodule.train_items, 64, datamodule.num_items)
    assert not torch.equal(expected, cosine_top_k(user_vectors, item_vectors, datamodule))
    recommender = Recommender.from_export(out, rerank_top=5)
    _, searched = recommender.search(list(datamodule.data.user_ids), k=5)
    assert searched.tolist() == expected.tolist()
    answers = served_top_k(recommender, datamodule, user_vectors, item_vectors, expected)
    # Each answer's score is the fused score it was ranked by, not its cosine.
    for user, answer in enumerate(answers):
        assert [a.score for a in answer] == pytest.approx(scores[user, expected[user]].tolist(), abs=1e-4)
    # Seen items included on request: the whole catalog comes back.
    _, everything = recommender.search([str(datamodule.data.user_ids[0])], k=datamodule.num_items, exclude_seen=False)
    assert sorted(everything[0].tolist()) == list(range(datamodule.num_items))

    # A new user: EASE reads the items of their reviews, which are then not recommended.
    reviews = [ReviewInput(text="a bright warm guitar string", item_id=str(datamodule.data.item_ids[i]), rating=5.0)
               for i in (0, 3)]
    answer = recommender.recommend_reviews(reviews, k=5)
    vector = recommender._new(reviews).vector
    reviewed = torch.zeros(1, datamodule.num_items, dtype=torch.bool)
    reviewed[0, [0, 3]] = True
    by_hand = fused_scores((vector @ bundle.item_vectors.T)[None], reviewed.float() @ bundle.ease_weights, ~reviewed,
                           0.7).masked_fill(reviewed, float("-inf"))
    assert [datamodule.data.item_ids.get_loc(a.item_id) for a in answer] == by_hand.topk(5).indices[0].tolist()


def test_a_fused_export_names_an_approximate_index_it_does_not_use(fused_export, caplog):
    from recsys.serving.index import IndexConfig

    with caplog.at_level(logging.INFO, logger="recsys.serving.recommender"):
        Recommender.from_export(fused_export[0], index=IndexConfig(kind="flat"))
        assert "is not used" not in caplog.text  # the default, exact as the fused ranking: nothing to say
        Recommender.from_export(fused_export[0], index=IndexConfig(kind="hnsw"))
    assert "ranks by cosine fused with EASE, exactly over the catalog: index=hnsw is not used" in caplog.text


def test_a_fused_export_without_its_ease_weights_is_refused(fused_export, tmp_path):
    out = copy_export(fused_export[0], tmp_path)
    manifest = json.loads((out / fmt.MANIFEST).read_text())
    del manifest["files"][fmt.EASE_WEIGHTS]
    (out / fmt.MANIFEST).write_text(json.dumps(manifest))
    (out / fmt.EASE_WEIGHTS).unlink()
    with pytest.raises(ExportError, match=f"ranks with EASE but {fmt.EASE_WEIGHTS} is missing"):
        load_export(out)


def test_an_export_that_fine_tuned_its_review_encoder_serves_users_through_it(tuned_reviews_export):
    out, module, datamodule = tuned_reviews_export
    net = module.net.eval()
    users = np.arange(datamodule.num_users)
    history = datamodule.history_batch(users)
    with torch.no_grad():
        user_vectors = net.user_vectors(history)
        item_vectors = net.catalog_vectors(datamodule.num_items)
        through_pretrained = net.user_tower(net.review_text[history.history_reviews],
                                            net.item_text[history.history_items], history.history_items,
                                            history.history_ratings, history.history_mask)
    assert not torch.allclose(user_vectors, through_pretrained, atol=1e-3)  # training changed the encoder
    recommender = Recommender.from_export(out, rerank_top=5, text_backend="fp32")
    assert recommender.net.review_encoder == "finetune"
    # Known users: the vectors of the trained encoder.
    torch.testing.assert_close(recommender.bundle.user_vectors, user_vectors, atol=1e-5, rtol=1e-5)
    served_top_k(recommender, datamodule, user_vectors, item_vectors, cosine_top_k(user_vectors, item_vectors,
                                                                                    datamodule))
    # A new user: the tower reads their reviews through the fine-tuned encoder too; explanations
    # still compare pretrained embeddings with the pretrained documents'.
    reviews = [ReviewInput("a warm bright guitar string", str(datamodule.data.item_ids[1]), 5.0),
               ReviewInput("it broke after a week", str(datamodule.data.item_ids[4]), 2.0)]
    asker = recommender._new(reviews)
    tokens = recommender.bundle.tokenizer([r.text for r in reviews], truncation=True, max_length=32, padding=True,
                                          return_tensors="pt")
    served_net = recommender.net
    with torch.no_grad():
        tuned = served_net.encoder(tokens["input_ids"], tokens["attention_mask"])
        pretrained = served_net.encoder.forward_pretrained(tokens["input_ids"], tokens["attention_mask"])
        items, ratings, mask = torch.tensor([[1, 4]]), torch.tensor([[5.0, 2.0]]), torch.ones(1, 2, dtype=torch.bool)
        by_hand = served_net.user_vectors_from_texts(tuned[None], items, ratings, mask)[0]
        with_pretrained = served_net.user_vectors_from_texts(pretrained[None], items, ratings, mask)[0]
    torch.testing.assert_close(asker.vector, by_hand, atol=1e-5, rtol=1e-5)
    assert (asker.vector - with_pretrained).abs().max() > 1e-4  # 20x the tolerance above
    torch.testing.assert_close(asker.review_vectors, pretrained, atol=1e-5, rtol=1e-5)


def test_a_baseline_run_offers_no_export_and_its_checkpoint_is_refused_with_why(tmp_path, monkeypatch, caplog):
    # Training model=mf printed "Export it for serving: python scripts/export.py ...", and that
    # command ended in AttributeError: 'MatrixFactorization' object has no attribute 'item_text'.
    from recsys.export import export_checkpoint
    from recsys.training.run import train
    from tests.conftest import tiny_reviews, write_lines
    from tests.training.test_schedule import config

    write_lines(tmp_path / "data" / "tiny" / "reviews.json.gz", tiny_reviews())
    out = tmp_path / "run"
    monkeypatch.setattr("recsys.training.run.run_dir", lambda cfg: out)
    caplog.set_level(logging.INFO, logger="recsys.training.run")
    train(config("model=mf", "logger=none", "data.dataset.name=tiny", "data.dataset.subdir=tiny",
                 "data.dataset.reviews=reviews.json.gz", f"paths.data_dir={tmp_path / 'data'}",
                 f"paths.cache_dir={tmp_path / 'cache'}", "trainer.max_epochs=1", "data.batch_size=8",
                 f"trainer.default_root_dir={out}", f"callbacks.checkpoint.dirpath={out / 'checkpoints'}",
                 f"callbacks.rating_checkpoint.dirpath={out / 'checkpoints'}",
                 f"callbacks.last_checkpoint.dirpath={out / 'checkpoints'}"))
    assert "Evaluate it: python scripts/evaluate.py" in caplog.text and "scripts/export.py" not in caplog.text
    with pytest.raises(ExportError, match="holds a MatrixFactorization, not the two-tower model, so it cannot") as err:
        export_checkpoint(out / "checkpoints" / "last.ckpt", tmp_path / "export")
    assert str(err.value).endswith(f"python scripts/evaluate.py ckpt={out / 'checkpoints' / 'last.ckpt'}")
    assert not (tmp_path / "export").exists()


def test_the_exportable_network_is_the_two_tower_model():
    from recsys.models.two_tower import TwoTowerModel

    assert f"{TwoTowerModel.__module__}.{TwoTowerModel.__qualname__}" == fmt.EXPORTABLE_NET
    assert fmt.exportable_net(fmt.EXPORTABLE_NET) and not fmt.exportable_net("recsys.baselines.mf.MatrixFactorization")
