"""`raytune-llm init --model M --data D`: draft a commented experiment YAML (raytune_llm.runs.draft) that validates."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import yaml

from raytune_llm.config.loading import validate_dict
from raytune_llm.core.errors import UserError
from raytune_llm.schema import Task


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init", help="draft a commented experiment YAML from a model and a dataset (task, lengths, space, budget)",
        epilog="example: raytune-llm init --model builtin:minilm --data builtin:bbc_news --budget 2h --out my.yaml")
    p.add_argument("--model", required=True, help="hub id, model folder, .gguf file, or builtin:<name>")
    p.add_argument("--data", required=True, help="folder of train/validation/test files, hub id, or builtin:<name>")
    p.add_argument("--subset", default=None, help="hub dataset config name, e.g. sst2 for glue")
    p.add_argument("--task", choices=[t.value for t in Task], default=None,
                   help="default: told by the data's columns and label types")
    p.add_argument("--budget", default="8-trials",
                   help="a number of trials (20-trials) or a time (2h, 90m: divided by one trial's time, measured "
                   "here on a few training steps); default: 8-trials")
    p.add_argument("--label-column", default=None, help="the label (or response, or tag) column")
    p.add_argument("--text-column", default=None, help="the text (or prompt, or word-list) column")
    p.add_argument("--labels", default=None, metavar="A,B,...", help="label names in id order, comma-separated")
    p.add_argument("--out", type=Path, default=None, help="write the YAML here (default: print it)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out: Path | None = args.out
    if out is not None and out.exists() and not args.force:
        raise UserError(f"--out {out}: the file exists; pass --force to overwrite it")
    from raytune_llm.runs.draft import draft

    labels = [s.strip() for s in args.labels.split(",") if s.strip()] if args.labels else None
    command = "raytune-llm init " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["init"] \
        else f"raytune-llm init --model {args.model} --data {args.data}"
    text = draft(args.model, args.data, args.task, args.budget, args.subset, args.label_column, args.text_column,
                 labels, command, str(out) if out else "FILE")
    # The product's own loader is the judge: a draft that does not validate is never written.
    validate_dict(yaml.safe_load(text), "the drafted YAML")
    if out is None:
        sys.stdout.write(text)
        return 0
    out.write_text(text)
    print(f"wrote {out}; next: raytune-llm validate {out} && raytune-llm search {out}", file=sys.stderr)
    return 0
