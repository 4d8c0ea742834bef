"""Serve recommendations over HTTP (FastAPI; docs at /docs).

    python scripts/serve.py export=DIR            # http://127.0.0.1:8000
"""

import hydra
from omegaconf import DictConfig

from recsys.cli import exit_on_user_error, readable_overrides, settings_from


@settings_from("export")
@readable_overrides
@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    # Imported here, so that --help and Hydra's own errors answer before torch loads (~6 s).
    from recsys.serving.cli import serve

    serve(cfg)


if __name__ == "__main__":
    main()
