"""`raytune-llm validate FILE`: check an experiment YAML without starting anything."""

from __future__ import annotations

import argparse

from raytune_llm.config.loading import load_config
from raytune_llm.schema import dump_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check an experiment YAML; print every problem with its path",
                       epilog="example: raytune-llm validate my.yaml --set train.optimizer.lr=3e-5")
    p.add_argument("file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting by its dotted path (repeatable)")
    p.add_argument("--print", dest="show", action="store_true", help="print the config with all defaults")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.file, args.overrides)
    if args.show:
        print(dump_config(cfg), end="")
    n = len(cfg.search.space)
    print(f"{args.file}: ok ({n} search param{'s' if n != 1 else ''}, {cfg.search.num_trials} trials)")
    return 0
