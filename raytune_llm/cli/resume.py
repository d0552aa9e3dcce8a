"""`raytune-llm resume RUN_DIR`: continue a search that was interrupted (Ctrl-C, a killed driver, a reboot)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resume", help="continue an interrupted search where it stopped",
                       epilog="example: raytune-llm resume runs/demo-bbc-minilm")
    p.add_argument("run_dir", help="the run folder `search` printed (a path or a cloud URI)")
    p.add_argument("--address", default=None, help="Ray cluster to join; default: start one locally")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raytune_llm.runs.layout import open_run, read_info
    from raytune_llm.search.driver import connect, restore_tuner
    from raytune_llm.search.progress import finish

    run_dir = open_run(args.run_dir)  # on a URI: a local mirror, read once
    info = read_info(run_dir)
    connect(info.experiment, args.address)
    print(f"resuming {info.run_root}")
    try:
        restore_tuner(run_dir, info).fit()
    except KeyboardInterrupt:
        print(f"\ninterrupted; the search state is saved. Continue with: raytune-llm resume {info.run_root}")
        return 130
    return finish(info.run_root)
