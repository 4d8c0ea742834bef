"""Evaluate a checkpoint on a split and write its metrics (metrics_<split>_<checkpoint>.json beside the run).

    python scripts/evaluate.py ckpt=outputs/train/<run>/checkpoints/last.ckpt split=test
    python scripts/evaluate.py ckpt=... relevance_min_rating=4   # recall etc. of the items rated 4+
    python scripts/evaluate.py ckpt=... breakdown=true           # also where the errors lie (breakdown_*.md)
"""

import hydra
from omegaconf import DictConfig

from recsys.cli import exit_on_user_error, readable_overrides, settings_from


@settings_from("checkpoint")
@readable_overrides
@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    # Imported here, so that --help and Hydra's own errors answer before torch loads (~6 s).
    from recsys.training.run import evaluate

    evaluate(cfg.ckpt, cfg.split, cfg.output_dir, cfg.relevance_min_rating, paths=cfg.paths,
             breakdown=cfg.breakdown)  # logs the metrics


if __name__ == "__main__":
    main()
