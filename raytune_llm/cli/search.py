"""`raytune-llm search FILE`: run a hyperparameter search and print where its results are."""

from __future__ import annotations

import argparse
from typing import Any

from raytune_llm.config.loading import load_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search", help="run a search (Ray Tune + Optuna, trials as Ray Train DDP jobs)",
        epilog="example: raytune-llm search search_spaces/demo_bbc_minilm.yaml --set search.num_trials=4",
    )
    p.add_argument("file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting by its dotted path (repeatable)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (auto, HOST:PORT or ray://HOST:10001); default: start one locally")
    p.set_defaults(func=run)


def start_line(cfg: Any, info: Any) -> str:
    """What the search starts from, said before the first trial (a portfolio start's recipes by name)."""
    from raytune_llm.recipes import effective_start, start_points
    from raytune_llm.search.driver import model_family

    if not cfg.search.space:
        return ""
    start = effective_start(cfg.search)
    if start != "portfolio":
        return f"start: {start} (search.start)"
    names = [name for name, _ in start_points(cfg.search, cfg.train, model_family(cfg, info))]
    return (f"start: {', '.join(names)} (search.start: portfolio; the default recipe runs to its full budget: the "
            f"yardstick), then {cfg.search.searcher.name}")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.file, args.overrides)  # every config problem surfaces before Ray starts
    from raytune_llm import tracking
    from raytune_llm.runs.prepare import prepare_run
    from raytune_llm.search.driver import build_tuner, concurrency_and_limit, connect
    from raytune_llm.search.progress import ProgressTable, finish

    _, info = prepare_run(cfg, args.address)
    run_root = info.run_root
    print(f"run folder: {run_root}")
    total = connect(cfg, args.address)
    at_once, limit = concurrency_and_limit(cfg, total)
    print(f"running up to {at_once} trial{'s' if at_once > 1 else ''} at once (limited by {limit})")
    if line := start_line(cfg, info):
        print(line)
    table = ProgressTable(cfg.search.metric, cfg.search.mode, cfg.search.num_trials,
                          watch=tracking.where_to_look(cfg, info))
    tuner = build_tuner(cfg, info, total, [table])
    try:
        tuner.fit()
    except KeyboardInterrupt:
        print(f"\ninterrupted; the search state is saved. Continue with: raytune-llm resume {run_root}")
        return 130
    return finish(run_root)
