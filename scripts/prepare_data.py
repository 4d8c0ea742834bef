"""Parse, split and tokenize a dataset once, then print its statistics.

    python scripts/prepare_data.py data=musical_instruments
    python scripts/prepare_data.py data=custom data.dataset.reviews=/path/to/reviews.csv   # your own data (README)
"""

import hydra
from omegaconf import DictConfig

from recsys.cli import exit_on_user_error, readable_overrides


@readable_overrides
@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    # Imported here, so that --help and Hydra's own errors answer before torch loads (~6 s).
    from recsys.data.preparation import prepare_and_describe

    print(prepare_and_describe(cfg.data))


if __name__ == "__main__":
    main()
