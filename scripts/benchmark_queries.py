"""Free-text queries: held-out reviews (their summary, or the whole review) read as queries, and how
often the reviewed item comes back in the top 10 of the catalog, by the weight of the
query-document text similarity (0: the towers' cosine alone; 'text only': zero-shot MiniLM).

    python scripts/benchmark_queries.py export=exports/mi
    python scripts/benchmark_queries.py export=exports/mi --weights 0 1 2 4 --out reports/query_benchmark.md
"""

import logging
from pathlib import Path

from recsys.cli import exit_on_user_error, script_parser


@exit_on_user_error
def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("export", help="export=DIR, an export written by scripts/export.py")
    parser.add_argument("--weights", nargs="+", type=float, default=[0.0, 1.0, 2.0, 3.0, 4.0],
                        help="query_text_weight values compared")
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=["val", "test"],
                        help="whose held-out reviews are read as queries")
    parser.add_argument("--data-dir", help="the data folder (default: the one the export's run read)")
    parser.add_argument("--out", default="reports/query_benchmark.md", help="where the table is written")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import hydra
    from omegaconf import OmegaConf

    from recsys.benchmarking.queries import benchmark_table, query_benchmark
    from recsys.serving.recommender import Recommender

    export = args.export.removeprefix("export=")
    recommender = Recommender.from_export(export)
    data_cfg = OmegaConf.create(recommender.bundle.config["data"])
    if args.data_dir:
        data_cfg.data_dir = args.data_dir
    datamodule = hydra.utils.instantiate(data_cfg)
    datamodule.prepare_data()
    reviews = datamodule.prepared.interactions
    results = {split: query_benchmark(recommender, reviews[reviews["split"] == split], args.weights)
               for split in args.splits}
    table = benchmark_table(results, recommender.query_text_weight)
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# Free-text query benchmark\n\n`python scripts/benchmark_queries.py export={export}`\n\n" + table)
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
