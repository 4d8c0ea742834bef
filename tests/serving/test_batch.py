"""Recommendations for many users written to a file (recsys.serving.batch, recommend.py users=... out=...)."""

import subprocess
import sys

import pandas as pd
import pytest

from recsys.serving.batch import COLUMNS, users_to_recommend, write_recommendations
from recsys.serving.recommender import Recommender
from tests.conftest import REPO_ROOT, recorded_progress_bars


@pytest.fixture(scope="module")
def recommender(tiny_export) -> Recommender:
    return Recommender.from_export(tiny_export[0])


def read_back(path) -> pd.DataFrame:
    reader = {".parquet": pd.read_parquet, ".csv": lambda p: pd.read_csv(p, dtype={"user_id": str, "item_id": str}),
              ".jsonl": lambda p: pd.read_json(p, lines=True, dtype={"user_id": str, "item_id": str})}
    return reader[path.suffix](path)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_the_file_holds_each_users_answer_as_the_recommender_gives_it(recommender, tmp_path, suffix):
    users = [str(u) for u in recommender.bundle.user_ids]
    out = tmp_path / f"recommendations{suffix}"
    # Batches of 5 users: the file is written in several parts, which must join into one table.
    written = write_recommendations(recommender, users, out, k=3, batch_users=5, progress=False)
    table = read_back(out)
    assert list(table.columns) == list(COLUMNS) and written == len(table) == 3 * len(users)
    assert set(COLUMNS) == {"user_id", *recommender.recommend_user(users[0], k=1)[0].to_dict()} - {"snippet"}
    for user, rows in table.groupby("user_id", sort=False):
        expected = recommender.recommend_user(user, k=3)
        assert rows["rank"].tolist() == [1, 2, 3]
        assert rows["item_id"].tolist() == [r.item_id for r in expected]
        assert rows["score"].tolist() == pytest.approx([r.score for r in expected], abs=1e-6)
        assert rows["predicted_rating"].tolist() == pytest.approx([r.predicted_rating for r in expected], abs=1e-4)
        assert rows["explanation"].tolist() == [r.explanation for r in expected]
        seen = set(recommender.bundle.reviews.loc[recommender.bundle.reviews["user_id"] == user, "item_id"])
        assert not seen & set(rows["item_id"])
    assert table["user_id"].drop_duplicates().tolist() == users  # in the order asked


def test_a_file_of_ids_is_read_as_written_and_an_unknown_one_is_named_by_its_line(recommender, tmp_path):
    first, second = (str(u) for u in recommender.bundle.user_ids[:2])
    ids = tmp_path / "ids.txt"
    ids.write_text(f"\ufeff{second}\n\n  {first} \n{second}\n", encoding="utf-8")  # a BOM, a blank line, a repeat
    assert users_to_recommend(recommender, ids) == [second, first]
    assert users_to_recommend(recommender, "all") == [str(u) for u in recommender.bundle.user_ids]
    ids.write_text(f"{first}\n{first.lower()}x\n")
    with pytest.raises(ValueError, match=rf"^{ids}, line 2: unknown user '{first.lower()}x' \(this export holds "):
        users_to_recommend(recommender, ids)
    ids.write_text(f"{first.lower()}\n")
    with pytest.raises(ValueError, match=rf"line 1: unknown user '{first.lower()}' \(did you mean '{first}'\?"):
        users_to_recommend(recommender, ids)
    ids.write_text("\n \n")
    with pytest.raises(ValueError, match="holds no user id"):
        users_to_recommend(recommender, ids)
    ids.write_bytes(f"{first}\n".encode() + "Müller\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"^{ids} is not UTF-8 text \(byte {len(first) + 2}\); save it as UTF-8"):
        users_to_recommend(recommender, ids)
    with pytest.raises(FileNotFoundError, match="users=absent.txt: no such file; give all or a text file"):
        users_to_recommend(recommender, "absent.txt")


def test_a_failure_midway_leaves_the_previous_file_whole(recommender, tmp_path, monkeypatch):
    users = [str(u) for u in recommender.bundle.user_ids]
    out = tmp_path / "recommendations.parquet"
    write_recommendations(recommender, users[:2], out, k=2, progress=False)
    before = out.read_bytes()
    answered = recommender.recommend_users

    def fail_on_the_second_batch(batch, k, exclude_seen):
        if batch[0] != users[0]:
            raise RuntimeError("disk full")
        return answered(batch, k, exclude_seen)

    monkeypatch.setattr(recommender, "recommend_users", fail_on_the_second_batch)
    with pytest.raises(RuntimeError, match="disk full"):
        write_recommendations(recommender, users, out, k=2, batch_users=4, progress=False)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no partial file left behind


def test_the_entry_checks_its_settings_before_loading_the_export(tmp_path):
    from hydra import compose, initialize_config_dir

    from recsys.serving.cli import recommend

    existing = tmp_path / "done.csv"
    existing.write_text("")
    cases = [
        (["users=all"], r"^users=all writes a file: add out=recommendations.parquet \(.parquet, .csv or .jsonl\)$"),
        (["users=all", "user=U0", f"out={tmp_path / 'r.csv'}"], r"give exactly one of .*; got user, users$"),
        ([], r"give exactly one of user=ID, query=\"text\" or users=all\|FILE .*; got none$"),
        (["user=U0", f"out={tmp_path / 'r.csv'}"], r"is where users=all\|FILE writes its recommendations"),
        (["users=all", f"out={tmp_path / 'r.xlsx'}"], r"the format is chosen by the suffix; use one of: .parquet"),
        (["users=all", f"out={existing}", "overwrite=maybe"], r"^overwrite='maybe' is not allowed: give true or false"),
    ]
    for overrides, message in cases:
        with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
            cfg = compose("recommend", overrides=[f"export={tmp_path / 'no-export'}", *overrides])
        with pytest.raises(ValueError, match=message):
            recommend(cfg)
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("recommend", overrides=[f"export={tmp_path / 'no-export'}", "users=all", f"out={existing}"])
    with pytest.raises(FileExistsError, match=r"done.csv exists; add overwrite=true to replace it$"):
        recommend(cfg)


def test_the_script_writes_every_users_recommendations(recommender, tiny_export, tmp_path):
    out = tmp_path / "dossier é" / "recs.csv"  # a path Hydra's grammar reads only quoted: recommend.py quotes it
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "recommend.py"), f"export={tiny_export[0]}", "users=all",
         f"out={out}", "k=2", f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    users = len(recommender.bundle.user_ids)
    assert f"Wrote {2 * users} recommendations (top 2 of {users} users) to {out} in " in result.stdout
    assert len(read_back(out)) == 2 * users
    ids = tmp_path / "one user.txt"
    ids.write_text(f"{recommender.bundle.user_ids[0]}\n")
    one = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "recommend.py"), f"export={tiny_export[0]}", f"users={ids}",
         f"out={out}", "overwrite=true", "k=2", f"hydra.run.dir={tmp_path}"], capture_output=True, text=True,
        cwd=REPO_ROOT, timeout=300)
    assert one.returncode == 0, one.stderr
    assert "Wrote 2 recommendations (top 2 of 1 user) to " in one.stdout and len(read_back(out)) == 2


def test_one_progress_bar_counts_every_user(recommender, tmp_path, monkeypatch):
    bars = recorded_progress_bars(monkeypatch)
    users = [str(u) for u in recommender.bundle.user_ids]
    write_recommendations(recommender, users, tmp_path / "quiet.csv", k=1, progress=False)
    assert bars == []
    write_recommendations(recommender, users, tmp_path / "r.csv", k=1, batch_users=5)
    assert bars == [{"advanced": len(users), "description": f"Recommending for {len(users)} users",
                     "total": len(users)}]
