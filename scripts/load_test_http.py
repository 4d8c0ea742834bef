"""Load-test the HTTP server: start it on loopback, send a seeded mix of valid and invalid requests
from concurrent clients, and report requests/s, latency, errors and server memory.

    python scripts/load_test_http.py export=exports/mi
    python scripts/load_test_http.py export=exports/mi --requests 10000 --clients 8 --out reports/http_load.md
"""

import tempfile
from pathlib import Path

from recsys.cli import exit_on_user_error, script_parser


@exit_on_user_error
def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("export", help="export=DIR (a folder written by scripts/export.py)")
    parser.add_argument("--requests", type=int, default=10_000, help="requests timed")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--warmup", type=int, default=500, help="requests sent before memory is measured")
    parser.add_argument("--invalid-share", type=float, default=0.3, help="share of invalid requests")
    parser.add_argument("--out", default="reports/http_load.md", help="where the table is written")
    args = parser.parse_args()
    # Imported here, so that --help and a bad option answer before torch loads.
    from recsys.export.reader import load_export
    from recsys.serving.load import ServerProcess, request_mix, run_load

    export = Path(args.export.removeprefix("export="))
    bundle = load_export(export)
    users, items = list(bundle.user_ids), list(bundle.item_ids)
    scale = bundle.manifest.get("rating_scale", (1.0, 5.0))  # exports before it was recorded: stars
    log = Path(tempfile.mkdtemp(prefix="recsys-load-")) / "server.log"
    with ServerProcess(export, log) as server:
        warmup = request_mix(users, items, args.warmup, seed=99, invalid_share=args.invalid_share, rating_scale=scale)
        run_load(server.url, warmup, args.clients)
        before = server.rss_mb()
        result = run_load(server.url, request_mix(users, items, args.requests, seed=0,
                                                  invalid_share=args.invalid_share, rating_scale=scale),
                          args.clients)
        after = server.rss_mb()
    s = result.summary()
    table = "\n".join([
        f"HTTP load test: {s['requests']:,} requests ({args.invalid_share:.0%} invalid), {args.clients} clients, "
        f"server and clients on one machine, export {export.name} ({len(items):,} items, {len(users):,} users)",
        "",
        "| requests/s | p50 ms | p99 ms | 5xx | no answer | valid not 200 | invalid not 4xx "
        "| server RSS before → after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s['requests_per_s']:.0f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['server_errors']} | "
        f"{s['no_answer']} | {s['valid_not_200']} | {s['invalid_not_4xx']} | {before:.0f} → {after:.0f} MB "
        f"({(after / before - 1):+.1%}) |",
    ])
    print(table)
    for line in result.failures():
        print("  wrong answer:", line)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table + "\n")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
