"""`raytune-llm`: dispatches to one module per command. User errors print one line and exit 2."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from raytune_llm import __version__
from raytune_llm.cli import compress, export, init, report, resume, robust, search, status, train, validate
from raytune_llm.core.errors import UserError

COMMANDS = (init, validate, search, resume, status, report, export, compress, robust, train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raytune-llm",
        description="Find stable, high-scoring fine-tuning recipes with Ray Tune + Optuna.",
        epilog="quickstart: raytune-llm search search_spaces/demo_bbc_minilm.yaml",
    )
    parser.add_argument("--version", action="version", version=f"raytune-llm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # transformers' per-load reports ("classifier.weight MISSING") are expected here and only noise.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
