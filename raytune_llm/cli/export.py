"""`raytune-llm export RUN_DIR --out DIR`: best config, model, tokenizer, labels and metrics; with a refit, the
model is the chosen config trained again on train + eval (raytune_llm.search.refit)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


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
    p.add_argument("--refit", action=argparse.BooleanOptionalAction, default=None,
                   help="retrain the chosen config on train + eval and export that model (default: the YAML's "
                        "refit.enabled; unset: on when data.eval_holdout carved the eval split out of train)")
    p.add_argument("--refit-steps", choices=["full", "best"], default=None,
                   help="full: the config's whole budget on the larger data (default); best: the step count "
                        "of the pick's best evaluation")
    p.add_argument("--refit-seeds", type=int, default=None, metavar="N",
                   help="train N refits (seeds seed, seed+1, ...) and export the median one")
    p.add_argument("--address", default=None,
                   help="Ray cluster a refit trains on; default: start one locally (without a refit, export reads "
                        "the run folder without Ray)")
    p.set_defaults(func=run)


def _print_summary(m: dict[str, Any], out: Path) -> None:
    metric = m["objective"]["metric"]
    refit = m["refit"]
    print(f"exported trial {m['trial_id']} ({m['peft_method']}) to {out}"
          + (f", refit on {refit['rows']} rows (train + eval) for {refit['steps']} steps "
             f"({refit['steps_rule']}), seed {refit['chosen_seed']}" if refit else ""))
    if refit:
        print(f"  search trial {metric}: {m['trial'][metric]:.4f} at step {m['trial'].get('step')} (on eval, "
              "which the refit then trained on: no eval self-check)")
        if spread := refit["spread"]:
            print(f"  seeds {', '.join(map(str, refit['seeds']))} by {spread['by']}: median {spread['median']:.4f}, "
                  f"min {spread['min']:.4f}, max {spread['max']:.4f}; exported seed {refit['chosen_seed']}")
        if refit["failed_seeds"]:
            print(f"  failed refits (not exported): {refit['failed_seeds']}")
    else:
        print(f"  trial {metric}: {m['trial'][metric]:.4f}; exported model on eval: {m['exported_eval'][metric]:.4f}; "
              f"prediction mismatches vs trial: {m['eval_prediction_mismatches']}")
    if gain := m.get("over_default_recipe"):
        print(f"  search trial: {gain['line']}")
    if "test" in m:
        shown = [k for k in m["test"] if k != "test_loss" and isinstance(m["test"][k], float)][:4]
        print("  test: " + ", ".join(f"{k.removeprefix('test_')} {m['test'][k]:.4f}" for k in shown))


def run(args: argparse.Namespace) -> int:
    from raytune_llm.results.export import check_out, choose_export, write_export
    from raytune_llm.runs.layout import open_run
    from raytune_llm.search.refit import plan_refit, refit

    check_out(args.out, args.force)
    chosen = choose_export(open_run(args.run_dir), args.by, args.trial)
    plan = plan_refit(chosen.info.experiment, args.refit, args.refit_steps, args.refit_seeds)
    done, failed = refit(chosen, plan, args.address) if plan else (None, "")
    if failed:
        print(f"warning: the refit failed ({failed}); exporting the search's checkpoint of trial "
              f"{chosen.choice.trial.trial_id} instead")
    m = write_export(chosen, args.out, merge=args.merge, force=args.force, refit=done, refit_failed=failed)
    _print_summary(m, args.out)
    return 0
