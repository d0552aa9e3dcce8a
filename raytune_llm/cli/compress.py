"""`raytune-llm compress EXPORT_DIR --out DIR`: int8, pruned and distilled variants of an exported model, each a
folder plain transformers loads, measured side by side against the original (raytune_llm.search.compress)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_METHODS = "int8,prune-heads,prune-magnitude,distill"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="quantise, prune and distil an exported model; measure each variant",
                       epilog="example: raytune-llm compress best-model --out compressed --methods int8,distill")
    p.add_argument("export_dir", nargs="?", type=Path, help="a folder `raytune-llm export` wrote")
    p.add_argument("--run", type=Path, default=None, metavar="RUN_DIR",
                   help="the run the export came from (default: the one metrics.json names); without EXPORT_DIR: "
                        "export the run's pick first (merged, to OUT-export beside OUT)")
    p.add_argument("--out", type=Path, required=True, help="folder to write (must be new or empty)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated, of int8, prune-heads, prune-magnitude, distill (default: {DEFAULT_METHODS})")
    p.add_argument("--scheme", choices=["dynamic", "weight-only"], default="dynamic",
                   help="int8: dynamic int8 activations and int8 weights (default), or int8 weights only")
    p.add_argument("--head-ratio", type=float, default=0.5, help="share of attention heads pruned (default 0.5)")
    p.add_argument("--magnitude-ratio", type=float, default=0.5,
                   help="share of the layers' linear weights zeroed (default 0.5)")
    p.add_argument("--recovery", action=argparse.BooleanOptionalAction, default=True,
                   help="also fine-tune each pruned model briefly, pruned weights held at zero (default: on)")
    p.add_argument("--recovery-steps", type=int, default=None, help="default: a quarter of an epoch")
    p.add_argument("--student-layers", type=int, default=None, help="distil into this many of the teacher's "
                   "layers, evenly spaced (default: half)")
    p.add_argument("--student", default=None, help="distil into this model instead (hub id or folder; the "
                   "teacher's tokenizer)")
    p.add_argument("--temperature", type=float, default=2.0, help="distillation temperature T (default 2)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the soft-target loss (default 0.5)")
    p.add_argument("--distill-steps", type=int, default=None, help="default: the pick's epochs over train")
    p.add_argument("--timing-rows", type=int, default=64, help="eval rows timed per round (default 64)")
    p.add_argument("--rounds", type=int, default=3, help="timing rounds, round-robin over the variants")
    p.add_argument("--threads", type=int, default=1, help="CPU threads every variant is timed with (default 1)")
    p.add_argument("--compile", action="store_true",
                   help="time every variant after torch.compile (torchao's int8 kernels are fast only compiled)")
    g = p.add_argument_group("search (--search): the compression settings searched, the Pareto front kept")
    g.add_argument("--search", action="store_true", help="search method and settings with two objectives (the "
                   "run's metric, and --objective) instead of building each method once")
    g.add_argument("--trials", type=int, default=None, help="trials of the search (default 8); the settings above "
                   "are the first, one per method")
    g.add_argument("--objective", choices=["latency", "size"], default=None,
                   help="the second objective, minimised (default: latency)")
    g.add_argument("--searcher", default=None, help="a searcher of `search.searcher` (default: tpe)")
    g.add_argument("--scheduler", default=None, help="a scheduler of `search.scheduler` (default: fifo; asha "
                   "compares a student's first round with an int8 variant's final score)")
    g.add_argument("--pick", default=None, metavar="RULE-within:POINTS",
                   help="the front's pick: smallest-within:0.01 (default) or fastest-within:0.01, POINTS on the "
                   "metric's scale from the original's eval score")
    g.add_argument("--address", default=None, help="a Ray cluster to search on (default: a local Ray)")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace, methods: list[str]) -> None:
    from raytune_llm.compression.methods import METHODS
    from raytune_llm.core.errors import UserError

    problems = [f"--methods: unknown {m!r} (choose from {', '.join(METHODS)})" for m in methods if m not in METHODS]
    problems += [f"{flag} {v}: between 0 and 1 (exclusive)" for flag, v in
                 (("--head-ratio", args.head_ratio), ("--magnitude-ratio", args.magnitude_ratio)) if not 0 < v < 1]
    problems += [f"--alpha {args.alpha}: between 0 and 1"] if not 0 <= args.alpha <= 1 else []
    problems += [f"--temperature {args.temperature}: above 0"] if args.temperature <= 0 else []
    problems += [f"{f} {v}: at least 1" for f, v in (("--threads", args.threads), ("--rounds", args.rounds),
                 ("--timing-rows", args.timing_rows)) if v < 1]
    given = [f for f, v in (("--trials", args.trials), ("--objective", args.objective), ("--searcher", args.searcher),
             ("--scheduler", args.scheduler), ("--pick", args.pick), ("--address", args.address)) if v is not None]
    if given and not args.search:
        problems.append(f"{', '.join(given)}: only with --search")
    if args.trials is not None and args.trials < 1:
        problems.append(f"--trials {args.trials}: at least 1")
    if args.pick is not None:
        from raytune_llm.search.compress_search import parse_pick

        try:
            parse_pick(args.pick)
        except UserError as exc:
            problems.append(str(exc))
    if args.export_dir is None and args.run is None:
        problems.append("give EXPORT_DIR (a folder `export` wrote) or --run RUN_DIR (its pick is exported first)")
    if problems:
        raise UserError("; ".join(problems))


def run(args: argparse.Namespace) -> int:
    from raytune_llm.compression.measure import table
    from raytune_llm.compression.source import open_source
    from raytune_llm.results.export import check_out, export
    from raytune_llm.runs.layout import open_run
    from raytune_llm.search.compress import Settings, compress

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    _check(args, methods)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    check_out(args.out, args.force)
    export_dir = args.export_dir
    run_dir = open_run(args.run) if args.run else None
    if export_dir is None:
        export_dir = args.out.parent / f"{args.out.name}-export"
        print(f"compress: exporting the pick of {run_dir} first", flush=True)
        export(run_dir, export_dir, merge=True, force=True)
    source = open_source(export_dir, run_dir)
    settings = Settings(head_ratio=args.head_ratio, magnitude_ratio=args.magnitude_ratio, recovery=args.recovery,
                        recovery_steps=args.recovery_steps, student_layers=args.student_layers, student=args.student,
                        temperature=args.temperature, alpha=args.alpha, distill_steps=args.distill_steps,
                        timing_rows=args.timing_rows, rounds=args.rounds, threads=args.threads, compile=args.compile,
                        scheme=args.scheme)
    if args.search:
        from raytune_llm.search.compress_search import search_compress

        summary = search_compress(source, args.out, methods, settings, trials=args.trials or 8,
                                  objective=args.objective or "latency", searcher=args.searcher or "tpe",
                                  scheduler=args.scheduler or "fifo", rule=args.pick or "smallest-within:0.01",
                                  address=args.address, force=args.force)
    else:
        summary = compress(source, args.out, methods, settings, args.force)
    print(table(summary["variants"], summary["objective"]["metric"]))
    if args.search:
        found = summary["search"]
        healthy = sum(t["healthy"] for t in found["trials"])
        print(f"search: {len(found['trials'])} trials ({healthy} healthy), Pareto front: {', '.join(found['front'])}"
              f"; pick ({found['pick_rule']}): {found['pick'] or 'none within the tolerance'}")
    print(f"wrote {args.out}/ (one folder per variant, each with compression.json; the table: "
          f"{args.out}/compression.json)")
    return 0
