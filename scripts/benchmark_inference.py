"""Serving text backends on a trained checkpoint: encoder sequences/s (fp32, bf16, int8, ONNX) and
the change in test recall@10 and RMSE when every review and item text is re-encoded with each.

    python scripts/benchmark_inference.py ckpt=outputs/mi_full/<run>/checkpoints/epochNN.ckpt
    python scripts/benchmark_inference.py ckpt=... --backends fp32 int8 --out reports/inference_benchmark.md
"""

import logging
from pathlib import Path
from typing import cast

from omegaconf import DictConfig, OmegaConf

from recsys.cli import exit_on_user_error, script_parser
from recsys.serving.backend_names import TEXT_BACKENDS


@exit_on_user_error
def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("ckpt", help="ckpt=PATH, a checkpoint written by scripts/train.py")
    parser.add_argument("--backends", nargs="+", default=list(TEXT_BACKENDS), choices=TEXT_BACKENDS,
                        help="the text backends timed")
    parser.add_argument("--out", default="reports/inference_benchmark.md", help="where the table is written")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from recsys.benchmarking.inference import backends_table, compare_backends
    from recsys.training.checkpoints import checkpoint_datamodule, load_checkpoint_config
    from recsys.training.run import build_module

    ckpt = Path(args.ckpt.removeprefix("ckpt="))
    cfg, checkpoint = load_checkpoint_config(ckpt)
    # This machine's folders (RECSYS_DATA_DIR, RECSYS_CACHE_DIR), where the run's are not here.
    paths = cast(DictConfig, OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "paths" / "default.yaml"))
    datamodule = checkpoint_datamodule(cfg, checkpoint, ckpt, "test", paths=paths)
    module = build_module(cfg, datamodule)
    module.load_state_dict(checkpoint["state_dict"])
    module.attach(datamodule.catalog())
    if "fp32" not in args.backends:
        args.backends.insert(0, "fp32")  # the reference
    results = compare_backends(module, datamodule, args.backends)
    text = "\n".join([
        f"Serving text backends: {torch.get_num_threads()} threads, batch 32; checkpoint {ckpt}",
        "(test metrics with every training review and item document re-encoded by the backend)", "",
        backends_table(results), "",
    ])
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
