"""The entry points, run as a user runs them."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import MUSICAL_INSTRUMENTS, REPO_ROOT, tiny_reviews, write_lines


def run_script(name: str, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / name), *overrides],
        capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, timeout=300,
    )


def test_train_cfg_job_prints_the_resolved_config(tmp_path: Path):
    result = run_script("train.py", "--cfg", "job", "--resolve", "data=magazine", "data.num_negatives=7",
                        env={"RECSYS_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert cfg["data"]["_target_"] == "recsys.data.datamodule.ReviewDataModule"
    assert cfg["data"]["dataset"]["meta"] == "meta_Magazine_Subscriptions.json.gz"
    assert cfg["data"]["num_negatives"] == 7
    assert cfg["data"]["data_dir"] == str(tmp_path)


def test_help_shows_the_usage_groups_config_and_where_errors_go():
    result = run_script("train.py", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("python scripts/train.py [group=option ...] [key=value ...]\n")
    assert "is powered by Hydra" not in result.stdout  # Hydra's own header, replaced
    assert "model: bias, ease" in result.stdout and "trainable_layers: 0" in result.stdout
    assert "RECSYS_DEBUG=1" in result.stdout


def test_the_help_of_scripts_that_read_a_checkpoint_or_export_offers_no_training_groups():
    # It listed every group of conf/ (data: custom, magazine, ...), none of which these scripts take.
    for script, key in (("evaluate.py", "ckpt: ???"), ("export.py", "out: ???"), ("add_items.py", "items: ???"),
                        ("serve.py", "export: ???"), ("recommend.py", "query_text_weight: 2.0")):
        result = run_script(script, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"python scripts/{script} [key=value ...]\n"), script
        assert "takes its data, model and training settings" in result.stdout
        assert key in result.stdout and "RECSYS_DEBUG=1" in result.stdout
        assert "Configuration groups" not in result.stdout and "magazine" not in result.stdout, script


def test_serve_and_recommend_each_show_only_their_own_keys():
    # They shared one config: recommend.py listed (and took, unused) the server's host and port,
    # serve.py the user and k of a one-off recommendation.
    served, recommended = run_script("serve.py", "--help").stdout, run_script("recommend.py", "--help").stdout
    assert "port: 8000" in served and "user: null" not in served and "k: 10" not in served
    assert "user: null" in recommended and "k: 10" in recommended and "port: 8000" not in recommended
    assert "query_text_weight: 2.0" in served and "query_text_weight: 2.0" in recommended  # shared


def test_a_training_group_given_to_a_script_that_reads_a_checkpoint_is_refused_with_why(tmp_path: Path):
    # Hydra answered "Could not override 'data'. No match in the defaults list. To append to your
    # default list use +data=magazine" (status 1), and the + it suggested was then silently ignored.
    for script, argument, source in (("evaluate.py", "data=magazine", "checkpoint"),
                                     ("evaluate.py", "+data=magazine", "checkpoint"),
                                     ("export.py", "model.text.trainable_layers=2", "checkpoint"),
                                     ("recommend.py", "trainer=gpu", "export")):
        result = run_script(script, "ckpt=absent.ckpt", argument, f"hydra.run.dir={tmp_path / 'run'}")
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert output.strip() == (f"{argument!r} does not apply here: {script} takes its data, model and "
                                  f"training settings from the {source} it is given. What it does take: "
                                  f"python scripts/{script} --help")


def test_the_benchmark_scripts_help_shows_what_they_measure_and_each_default():
    # It was the docstring's first line (benchmark_speed.py: "Speed benchmark"), and no defaults.
    scripts = ("benchmark.py", "benchmark_inference.py", "benchmark_queries.py", "benchmark_serving.py",
               "benchmark_speed.py", "load_test_http.py")
    for script in scripts:
        result = run_script(script, "--help")
        assert result.returncode == 0, result.stderr
        doc = ast.get_docstring(ast.parse((REPO_ROOT / "scripts" / script).read_text()))
        assert doc is not None and " ".join(doc.split()) in " ".join(result.stdout.split()), script
        assert "--out OUT" in result.stdout and "(default:" in result.stdout, script


def test_the_scripts_load_no_torch_before_their_task_runs():
    # They imported their task at the top, and with it torch, Lightning and transformers: --help,
    # --cfg, a flag of the wrong kind and Hydra's override errors took 6-11 s to answer, now 0.2-0.5 s.
    probe = ("import sys, runpy; runpy.run_path('scripts/{}', run_name='probe'); "
             "print(sorted({{'torch', 'pytorch_lightning', 'transformers'}} & set(sys.modules)))")
    scripts = sorted(p.name for p in (REPO_ROOT / "scripts").glob("*.py"))
    assert {"train.py", "serve.py", "add_items.py", "benchmark_inference.py", "load_test_http.py"} <= set(scripts)
    for script in scripts:
        result = subprocess.run([sys.executable, "-c", probe.format(script)], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True)
        assert result.stdout.strip() == "[]", script


def test_prepare_data_prints_stats_and_reuses_its_cache(tmp_path: Path):
    data_dir = tmp_path / "data"
    write_lines(data_dir / MUSICAL_INSTRUMENTS.subdir / MUSICAL_INSTRUMENTS.reviews,
                tiny_reviews(num_users=10, num_items=12, per_user=5))  # in place of the default dataset
    args = (f"paths.data_dir={data_dir}", f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run'}")
    first = run_script("prepare_data.py", *args)
    assert first.returncode == 0, first.stderr
    assert "| train | 40 | 10 |" in first.stdout and "| all | 50 | 10 | 12 |" in first.stdout
    assert "Median user history (training reviews, capped): 4" in first.stdout
    header, train_row = (line for line in first.stdout.splitlines() if line.startswith(("| split |", "| train |")))
    assert header.endswith("| with review text | with a new user | with a new item |")
    assert train_row.endswith("| 100.00% | - | - |")  # held-out splits only
    second = run_script("prepare_data.py", *args)
    assert "Reusing split" in second.stderr + second.stdout
    assert "40 from cache, 0 tokenized" in second.stderr + second.stdout


def test_missing_data_exits_with_instructions(tmp_path: Path):
    result = run_script("prepare_data.py", f"paths.data_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "Dataset 'musical_instruments' not found" in output
    assert "RECSYS_DATA_DIR" in output and "Traceback" not in output


def test_a_missing_required_setting_exits_with_the_usage(tmp_path: Path):
    result = run_script("evaluate.py", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "ckpt has no value" in output and "add ckpt=... to the command line" in output
    assert "python scripts/evaluate.py ckpt=" in output and "Traceback" not in output


def test_a_bad_override_exits_with_what_is_allowed(tmp_path: Path):
    # The ValueError comes from a config's target, which Hydra's instantiate wraps in its own error.
    result = run_script("train.py", "experiment=smoke", "data.split.strategy=weird",
                        f"hydra.run.dir={tmp_path / 'run'}", env={"RECSYS_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "data.split.strategy='weird' is not allowed; use one of: random, temporal, kfold" in output
    assert "Error in call to target" not in output and "HYDRA_FULL_ERROR" not in output


def test_the_benchmark_scripts_answer_user_errors_like_the_others(tmp_path: Path):
    for script, args in (("benchmark_serving.py", ["--export"]), ("benchmark_queries.py", [])):
        result = run_script(script, *args, str(tmp_path / "nope"))
        assert result.returncode == 2, script
        output = result.stdout + result.stderr
        assert f"No export directory at {tmp_path / 'nope'}" in output and "Traceback" not in output, script


def test_a_flag_that_is_not_true_or_false_is_named_before_any_work(tmp_path: Path):
    for script, args in (("export.py", ["ckpt=absent.ckpt", f"out={tmp_path / 'e'}", "overwrite=maybe"]),
                         ("add_items.py", ["export=absent", "items=absent.csv", f"out={tmp_path / 'e'}",
                                           "overwrite=maybe"])):
        result = run_script(script, *args, f"hydra.run.dir={tmp_path / 'run'}")
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert "overwrite='maybe' is not allowed: give true or false" in output and "Traceback" not in output


def test_the_benchmark_checks_its_overrides_before_any_model_runs(tmp_path: Path):
    result = run_script("benchmark.py", "data=magazine", "model.module.loss.temprature=0.1", "--work",
                        str(tmp_path / "runs"), "--out", str(tmp_path / "reports"))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "bad override: Could not override 'model.module.loss.temprature'" in output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "reports").exists()  # nothing ran
