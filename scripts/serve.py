"""Serve recommendations over HTTP (FastAPI; docs at /docs).

    python scripts/serve.py export=DIR            # http://127.0.0.1:8000
"""

import hydra
from omegaconf import DictConfig

from recsys.cli import exit_on_user_error
from recsys.serving.cli import serve


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    serve(cfg)


if __name__ == "__main__":
    main()
