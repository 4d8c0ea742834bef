"""Print recommendations for a known user or a text query, or write those of many users to a file.

    python scripts/recommend.py export=DIR user=A2IBPI20UZIR0U k=10
    python scripts/recommend.py export=DIR query="warm sounding strings for an acoustic guitar"
    python scripts/recommend.py export=DIR users=all out=recommendations.parquet   # or users=ids.txt; .csv, .jsonl
"""

import hydra
from omegaconf import DictConfig

from recsys.cli import RECOMMEND_TEXT_KEYS, exit_on_user_error, readable_overrides, settings_from, text_overrides


@settings_from("export")
@text_overrides(*RECOMMEND_TEXT_KEYS)  # free text and ids, as given: query=café, not dull; user=007
@readable_overrides
@hydra.main(version_base="1.3", config_path="../conf", config_name="recommend")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    # Imported here, so that --help and Hydra's own errors answer before torch loads (~6 s).
    from recsys.serving.cli import recommend

    recommend(cfg)


if __name__ == "__main__":
    main()
