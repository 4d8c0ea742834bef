"""Every config file composes, and the data configs instantiate."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from recsys.data.datamodule import ReviewDataModule
from recsys.data.sources import DatasetFiles
from recsys.data.splits import SplitSpec
from tests.conftest import REPO_ROOT

CONF = REPO_ROOT / "conf"


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("data", group_options("data"))
def test_data_configs_instantiate(data: str, tmp_path: Path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"data={data}", f"paths.data_dir={tmp_path}", "seed=5"])
    dm = instantiate(cfg.data)
    assert isinstance(dm, ReviewDataModule)
    assert isinstance(dm.dataset, DatasetFiles) and dm.dataset.name == data
    assert dm.split == SplitSpec(strategy="random", seed=5, fractions=(0.8, 0.1, 0.1))
    assert Path(dm.data_dir) == tmp_path


@pytest.mark.parametrize("group", ["model", "trainer", "logger", "paths"])
def test_every_option_of_a_group_composes(group: str):
    for option in group_options(group):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=[f"{group}={option}"])
        assert cfg.data.dataset.name == "musical_instruments"


def test_data_dir_defaults_to_the_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train")
    assert cfg.paths.data_dir == str(tmp_path)
    assert cfg.data.data_dir == str(tmp_path)


def test_unknown_override_value_is_refused():
    from hydra.errors import ConfigCompositionException

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"), pytest.raises(
        ConfigCompositionException, match="musical_instruments"
    ):
        compose("train", overrides=["data=movies"])
