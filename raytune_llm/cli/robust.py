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
    from raytune_llm.search.robust import run_robust

    if args.top_k < 1 or args.seeds < 1:
        raise UserError("--top-k and --seeds must be at least 1")
    from raytune_llm.runs.layout import open_run

    summary = run_robust(open_run(args.run_dir), args.top_k, args.seeds, args.score, args.address)
    print_summary(summary)
    print(f"next: raytune-llm export {args.run_dir} --by robust --out ./robust-model")
    return 0


def print_summary(summary: dict) -> None:
    metric = summary["metric"]
    chance = summary.get("chance_metric", "eval_accuracy")
    level = summary.get("chance_value", summary.get("majority_baseline", 0.0))  # older summaries: the latter
    at_chance = f" or final {chance} <= chance level {level:.3f}" if chance else ""
    print(f"robustness over seeds ({metric}, score = {summary['score']}; failed = unstable{at_chance}):")
    print(f"{'rank':<5}{'trial':<10}{'mean':>8}{'std':>8}{'min':>8}{'failed':>8}{'score':>8}  params")
    for i, c in enumerate(summary["configs"], 1):
        params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in c["params"].items())
        print(f"{i:<5}{c['source_trial']:<10}{c['mean']:>8.4f}{c['std']:>8.4f}{c['min']:>8.4f}"
              f"{c['failed_rate']:>8.0%}{c['robust_score']:>8.4f}  {params}")
