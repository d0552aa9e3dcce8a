"""`raytune-llm export RUN_DIR --out DIR`: best config, model, tokenizer, labels and metrics."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the best trial's config and model",
                       epilog="example: raytune-llm export runs/demo --out best-model --merge")
    p.add_argument("run_dir", help="the run folder `search` printed (a path or a cloud URI)")
    p.add_argument("--out", type=Path, required=True, help="folder to write (must be new or empty)")
    p.add_argument("--merge", action="store_true", help="LoRA: also write merged full weights to OUT/model")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--by", choices=["score", "robust"], default="score",
                   help="score: the best single evaluation; robust: the config that did best across seeds "
                        "(after `raytune-llm robust`)")
    p.add_argument("--trial", default=None, metavar="TRIAL_ID",
                   help="export this trial's best checkpoint instead of the search's best")
    p.add_argument("--address", default=None,
                   help="accepted like the other commands; unused: export reads the run folder without Ray")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raytune_llm.results.export import export
    from raytune_llm.runs.layout import open_run

    m = export(open_run(args.run_dir), args.out, merge=args.merge, force=args.force, by=args.by,
               trial_id=args.trial)
    metric = m["objective"]["metric"]
    print(f"exported trial {m['trial_id']} ({m['peft_method']}) to {args.out}")
    print(f"  trial {metric}: {m['trial'][metric]:.4f}; exported model on eval: {m['exported_eval'][metric]:.4f}; "
          f"prediction mismatches vs trial: {m['eval_prediction_mismatches']}")
    if "test" in m:
        shown = [k for k in m["test"] if k != "test_loss" and isinstance(m["test"][k], float)][:4]
        print("  test: " + ", ".join(f"{k.removeprefix('test_')} {m['test'][k]:.4f}" for k in shown))
    return 0
