"""Export a trained checkpoint for serving.

    python scripts/export.py ckpt=outputs/mi_full/<run>/checkpoints/epoch04.ckpt out=exports/mi
"""

import hydra
from omegaconf import DictConfig

from recsys.cli import exit_on_user_error
from recsys.export import export_checkpoint


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    print(f"Exported to {export_checkpoint(cfg.ckpt, cfg.out, overwrite=cfg.overwrite)}")


if __name__ == "__main__":
    main()
