"""Adding items to an export without retraining (recsys.export.new_items)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from recsys.export import load_export
from recsys.export.new_items import add_items
from recsys.serving.recommender import Recommender

NEW_DOCUMENT = "zyzzyva quokka marimba: a handmade marimba tuned by quokkas"


def test_a_new_item_gets_the_text_only_vector_of_the_item_tower(tiny_export, tmp_path):
    export, module, datamodule = tiny_export
    before = load_export(export)
    # An old item's document again under a new id: its vector must be that item's text part alone.
    old = 3
    documents = pd.DataFrame({"item_id": ["copy-of-3", "new-marimba"],
                              "document": [datamodule.data.item_documents["document"].iloc[old], NEW_DOCUMENT]})
    grown = load_export(add_items(export, documents, tmp_path / "grown"))  # load_export verifies every checksum

    assert grown.manifest["num_items"] == len(before.item_ids) + 2
    assert grown.item_ids.tolist() == [*before.item_ids, "copy-of-3", "new-marimba"]
    assert grown.items["train_count"].iloc[-2:].tolist() == [0, 0]
    assert torch.equal(grown.item_vectors[: len(before.item_ids)], before.item_vectors)
    assert torch.equal(grown.user_vectors, before.user_vectors)
    net = module.net.eval()
    with torch.no_grad():
        tower = net.item_tower
        text_only = F.normalize(tower.projection(tower.text_embeddings(torch.tensor([old]))), dim=-1)[0]
    # Equal but for float rounding (the catalog runs the frozen layers once and caches them).
    assert (grown.item_vectors[-2] - text_only).abs().max() < 1e-3
    assert (grown.item_vectors[-2] - before.item_vectors[old]).abs().max() > 1e-2  # that one adds its id row
    assert (grown.net.item_text[-2] - before.net.item_text[old]).abs().max() < 1e-3
    for name in ("item_bias.weight", "item_tower.id_embedding.weight", "user_tower.item_embedding.weight"):
        table = grown.net.state_dict()[name]
        assert table.shape[0] == len(grown.item_ids) and not table[-2:].any()


def test_the_new_items_are_served_at_once(tiny_export, tmp_path):
    export, _, _ = tiny_export
    grown = add_items(export, pd.DataFrame({"item_id": ["new-marimba"], "document": [NEW_DOCUMENT]}),
                      tmp_path / "grown")
    recommender = Recommender.from_export(grown, query_text_weight=5.0)
    assert recommender.recommend_query(NEW_DOCUMENT, k=1)[0].item_id == "new-marimba"
    assert recommender.item("new-marimba")["snippet"].startswith("zyzzyva quokka marimba")
    user = str(recommender.bundle.user_ids[0])
    everything = recommender.recommend_user(user, k=len(recommender.bundle.item_ids), exclude_seen=False)
    assert "new-marimba" in {r.item_id for r in everything}


def test_a_fused_export_grows_its_ease_matrix_with_zeros(fused_export, tmp_path):
    export, _, _ = fused_export
    before = load_export(export)
    grown = load_export(add_items(export, pd.DataFrame({"item_id": ["new"], "document": [NEW_DOCUMENT]}),
                                  tmp_path / "grown"))
    n = len(before.item_ids)
    assert grown.ease_weights.shape == (n + 1, n + 1)
    assert torch.equal(grown.ease_weights[:n, :n], before.ease_weights)
    assert not grown.ease_weights[n].any() and not grown.ease_weights[:, n].any()
    assert grown.ease_fusion == before.ease_fusion
    answer = Recommender(grown).recommend_user(str(grown.user_ids[0]), k=n + 1, exclude_seen=False)
    assert len(answer) == n + 1


def test_bad_additions_are_refused_and_the_export_is_left_whole(tiny_export, tmp_path):
    export, _, _ = tiny_export
    known = str(load_export(export).item_ids[0])
    cases = {
        "already in the export's catalog": pd.DataFrame({"item_id": [known], "document": ["text"]}),
        "more than once": pd.DataFrame({"item_id": ["a", "a"], "document": ["one", "two"]}),
        "no text to place them by": pd.DataFrame({"item_id": ["b"], "document": ["  "]}),
        "no items to add": pd.DataFrame({"item_id": [], "document": []}),
    }
    for message, documents in cases.items():
        with pytest.raises(ValueError, match=message):
            add_items(export, documents, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileExistsError, match="overwrite=true"):
        add_items(export, pd.DataFrame({"item_id": ["c"], "document": ["text"]}), export)
    load_export(export)  # still verifies


def test_the_script_reads_an_items_file_and_answers_errors_with_a_message(tiny_export, tmp_path):
    from tests.test_scripts import run_script

    export, _, _ = tiny_export
    items = tmp_path / "new.csv"
    pd.DataFrame({"sku": ["m1", "m2"], "title": ["Marimba", "Kazoo"], "description": ["Rosewood bars.", ""],
                  "categories": ["Percussion", "Toys"]}).to_csv(items, index=False)
    done = run_script("add_items.py", f"export={export}", f"items={items}", f"out={tmp_path / 'grown'}",
                      "item_fields.item=sku")
    assert done.returncode == 0, done.stderr
    assert "Added 2 items" in done.stdout
    logs = list(Path(os.environ["RECSYS_OUTPUT_DIR"], "add_items").glob("*/add_items.log"))  # not in the repo
    assert any("Added 2 items" in log.read_text() for log in logs)
    grown = load_export(tmp_path / "grown")
    assert grown.item_ids[-2:].tolist() == ["m1", "m2"]
    assert grown.items["snippet"].iloc[-2:].tolist() == ["Marimba | Percussion | Rosewood bars.", "Kazoo | Toys"]
    again = run_script("add_items.py", f"export={tmp_path / 'grown'}", f"items={items}", f"out={tmp_path / 'x'}",
                       "item_fields.item=sku")
    assert again.returncode == 2 and "already in the export's catalog, e.g. 'm1'" in again.stdout + again.stderr
    # Items without text are left out under on_bad_line=skip: the script said "Added 2 items" for one.
    # The warning names the script's own setting (it named data.dataset.item_fields.brand, which it does not take).
    new = pd.DataFrame({"sku": ["m3", "m4"], "title": ["Ocarina", ""], "categories": ["Winds", ""]})
    new.to_csv(items, index=False)
    skipped = run_script("add_items.py", f"export={export}", f"items={items}", f"out={tmp_path / 'y'}",
                         "item_fields.item=sku", "item_fields.brand=maker", "on_bad_line=skip")
    assert skipped.returncode == 0, skipped.stderr
    assert f"Added 1 items: {tmp_path / 'y'}" in skipped.stdout
    assert load_export(tmp_path / "y").item_ids[-1] == "m3"
    assert "item_fields.brand names 'maker'" in skipped.stdout + skipped.stderr
    assert "data.dataset.item_fields" not in skipped.stdout + skipped.stderr
    items.write_text("sku,title\nm5,Harp\nm6,Lute,extra\n")
    bad = run_script("add_items.py", f"export={export}", f"items={items}", f"out={tmp_path / 'z'}",
                     "item_fields.item=sku", "item_fields.categories=null", "item_fields.description=null")
    assert bad.returncode == 2
    assert (f"{items}:3: wrong_field_count: 3 fields where the header has 2\nFix or remove the line, or set "
            "on_bad_line=skip to skip bad lines") in bad.stdout + bad.stderr
    wrong = run_script("add_items.py", f"export={export}", f"items={items}", f"out={tmp_path / 'z'}",
                       "on_bad_line=ignore")
    assert "on_bad_line='ignore' is not allowed; use one of: error, skip" in wrong.stdout + wrong.stderr
    assert "data.on_bad_line" not in bad.stdout + bad.stderr + wrong.stdout + wrong.stderr
