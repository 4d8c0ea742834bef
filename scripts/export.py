"""Export a trained checkpoint for serving.

    python scripts/export.py ckpt=outputs/mi_full/<run>/checkpoints/epoch04.ckpt out=exports/mi
    python scripts/export.py ckpt=... out=exports/mi_onnx export.onnx=true      # + encoder.onnx (onnxruntime)
    python scripts/export.py ckpt=... out=exports/mi_int8 export.quantize=int8  # int8 linear layers
"""

import hydra
from omegaconf import DictConfig

from recsys.cli import exit_on_user_error, readable_overrides, settings_from
from recsys.settings import flag_setting


@settings_from("checkpoint")
@readable_overrides
@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    onnx, overwrite = flag_setting(cfg, "export.onnx"), flag_setting(cfg, "overwrite")
    # Imported here, so that --help, Hydra's own errors and the flags' answer before torch loads (~6 s).
    from recsys.export import export_checkpoint
    from recsys.export.writer import ServingOptions

    serving = ServingOptions(quantize=cfg.export.quantize, onnx=onnx)
    out = export_checkpoint(cfg.ckpt, cfg.out, overwrite=overwrite, serving=serving, paths=cfg.paths)
    print(f"Exported to {out}")


if __name__ == "__main__":
    main()
