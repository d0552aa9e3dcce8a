"""`raytune-llm resume RUN_DIR`: continue a search that was interrupted (Ctrl-C, a killed driver, a reboot)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resume", help="continue an interrupted search where it stopped",
                       epilog="example: raytune-llm resume runs/demo-bbc-minilm")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--address", default=None, help="Ray cluster to join; default: start one locally")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raytune_llm.cli.search import finish
    from raytune_llm.rundir import read_info
    from raytune_llm.search import connect, restore_tuner

    run_dir = args.run_dir.resolve()
    info = read_info(run_dir)
    connect(info.experiment, args.address)
    print(f"resuming {run_dir}")
    try:
        restore_tuner(run_dir, info).fit()
    except KeyboardInterrupt:
        print(f"\ninterrupted; the search state is saved. Continue with: raytune-llm resume {run_dir}")
        return 130
    return finish(run_dir)
