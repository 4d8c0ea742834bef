"""Train a model. Hydra overrides pick data, model, trainer and logger, e.g.

    python scripts/train.py data=magazine trainer.max_epochs=3
    python scripts/train.py --cfg job          # print the resolved config and exit
"""

import hydra
from omegaconf import DictConfig

from recsys.cli import exit_on_user_error, readable_overrides


@readable_overrides
@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    # Imported here, so that --help and Hydra's own errors answer before torch loads (~6 s).
    from recsys.training.run import train

    return train(cfg)


if __name__ == "__main__":
    main()
