"""`raytune-llm report RUN_DIR [--compare RUN ...] [--out DIR]`: one offline HTML page of a search, without Ray."""

from __future__ import annotations

import argparse
from pathlib import Path

from raytune_llm.core.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write an HTML report of a run (plots, summary.json, trials.csv)",
                       epilog="example: raytune-llm report runs/demo --out report && open report/index.html")
    p.add_argument("run_dir", help="the run folder `search` printed (a path or a cloud URI)")
    p.add_argument("--compare", nargs="+", default=[], metavar="RUN",
                   help="other runs to overlay in the best-so-far plot (3 or more: their median and range)")
    p.add_argument("--out", type=Path, default=None, help="output folder; default: RUN_DIR/report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raytune_llm.core.storage import is_uri
    from raytune_llm.report import build_report
    from raytune_llm.runs.layout import open_run

    if args.out is None and is_uri(args.run_dir):
        raise UserError("a run on a cloud URI needs --out DIR (the report is written locally)")
    out = args.out or open_run(args.run_dir) / "report"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; give a folder")
    page = build_report(args.run_dir, out, args.compare)
    print(f"report: {page}")
    print(f"        {out / 'summary.json'} (every number on the page), {out / 'trials.csv'}, {out / 'figures'}/")
    return 0
