"""`raytune-llm robust RUN_DIR`: re-run the top configs with several seeds and rank them by robustness."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robust", help="re-run the top-K configs with N seeds; rank by mean - std",
                       epilog="example: raytune-llm robust runs/demo --top-k 3 --seeds 5, then "
                              "raytune-llm export runs/demo --by robust --out best")
    p.add_argument("run_dir", help="the run folder `search` printed (a path or a cloud URI)")
    p.add_argument("--top-k", type=int, default=3, help="how many of the best configs to re-run")
    p.add_argument("--seeds", type=int, default=3, help="seeds per config (weight init and data order)")
    p.add_argument("--score", default="mean-std", help="mean-std (default), mean, median or min")
    p.add_argument("--address", default=None, help="Ray cluster to join; default: start one locally")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raytune_llm.core.errors import UserError
    from raytune_llm.results.robustness import summary_lines
    from raytune_llm.search.robust import run_robust

    if args.top_k < 1 or args.seeds < 1:
        raise UserError("--top-k and --seeds must be at least 1")
    from raytune_llm.runs.layout import open_run

    summary = run_robust(open_run(args.run_dir), args.top_k, args.seeds, args.score, args.address)
    print("\n".join(summary_lines(summary)))
    print(f"next: raytune-llm export {args.run_dir} --by robust --out ./robust-model")
    return 0
