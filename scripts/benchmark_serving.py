"""Serving speed on a real export and on a synthetic 100,000-item catalog (same run, ratios to raw faiss).

    python scripts/benchmark_serving.py --export exports/mi --out reports/serving_benchmark.md
"""

import platform
from dataclasses import replace
from pathlib import Path

from recsys.cli import exit_on_user_error, script_parser


@exit_on_user_error
def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--export", required=True, help="export directory (scripts/export.py)")
    parser.add_argument("--out", default="reports/serving_benchmark.md", help="where the table is written")
    parser.add_argument("--synthetic-items", type=int, default=100_000, help="items of the synthetic catalog")
    parser.add_argument("--k", type=int, default=10, help="items asked for per request")
    args = parser.parse_args()
    # Imported here, so that --help and a bad option answer before torch loads.
    import torch

    from recsys.serving.benchmark import measure, render, synthetic_catalog
    from recsys.serving.recommender import Recommender

    real = Recommender.from_export(args.export)
    fused = None
    if real.bundle.ease_weights is not None:
        # The faiss paths are measured on the export's cosine ranking; the fused one on its own rows.
        print(f"{args.export} ranks by cosine fused with EASE: measuring that ranking and its cosine retrieval")
        fused, real = real, Recommender(replace(real.bundle, ease_weights=None, ease_fusion=0.0))
    rows = measure(real, f"real ({len(real.bundle.item_ids):,} items)", k=args.k, fused=fused)
    grown = synthetic_catalog(real, args.synthetic_items)
    rows += measure(grown, f"synthetic ({args.synthetic_items:,} items)", k=args.k)
    table = render(rows)
    header = (f"Serving benchmark: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
              f"dim {real.bundle.item_vectors.shape[1]}, k={args.k}\n\n")
    print(header + table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + table + "\n")


if __name__ == "__main__":
    main()
