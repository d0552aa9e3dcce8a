"""`raytune-llm status RUN_DIR`: the trial table of a run (finished or in progress), without Ray."""

from __future__ import annotations

import argparse
import json

from raytune_llm.core.outcomes import real_value
from raytune_llm.core.stops import AT_CHANCE, advice, failed_as
from raytune_llm.results.choice import choice_or_none, gain_over_default, pareto_front
from raytune_llm.results.robustness import read_summary, summary_lines
from raytune_llm.results.trials import TrialRecord, load_trials, outcome_counts
from raytune_llm.runs.layout import open_run, read_info


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="print the trial table of a run", epilog="example: raytune-llm status runs/demo")
    p.add_argument("run_dir", help="the run folder `search` printed (a path or a cloud URI)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _failed_compute(trials: list[TrialRecord]) -> str:
    """The share of the search's optimizer steps that went into failed trials, and those that ended at chance."""
    steps = {t.trial_id: int(t.last.get("step") or 0) for t in trials}
    total = sum(steps.values())
    failed = [t for t in trials if t.failed]
    if not failed or not total:
        return ""
    line = (f"failed: {len(failed)} of {len(trials)} trials, {sum(steps[t.trial_id] for t in failed) / total:.0%} "
            "of the optimizer steps")
    if chance := [t for t in failed if t.failure == AT_CHANCE]:
        line += (f"; {len(chance)} ended at chance level ({sum(steps[t.trial_id] for t in chance) / total:.0%} of "
                 f"the steps), whoever stopped them: {advice(AT_CHANCE)}")
    return line


def run(args: argparse.Namespace) -> int:
    run_dir = open_run(args.run_dir)
    cfg = read_info(run_dir).experiment
    metric, mode = cfg.search.metric, cfg.search.mode
    trials = load_trials(run_dir)
    choice = choice_or_none(trials, cfg.search)
    front = pareto_front(trials, cfg.search) if cfg.search.objectives else []
    objectives = [metric, *(o.metric for o in cfg.search.objectives)]
    best_trial = choice.trial if choice else None
    gain = gain_over_default(trials, cfg.search, choice)
    records = []
    for t in trials:
        row = t.best_row(metric, mode)
        real = t.fallback_row(metric, mode)
        records.append({
            "trial_id": t.trial_id, "outcome": t.outcome, "iterations": len(t.rows),
            "steps": t.last.get("step"), f"best_{metric}": row[metric] if row else None,
            f"best_real_{metric}": real_value(real, metric) if real else None,  # failed trials: what they scored
            "params": t.params, "recipe": t.recipe, "error": t.error, "stop_detail": t.last.get("stop_detail", ""),
        })
    if args.json:
        robust = read_summary(run_dir)
        print(json.dumps({"metric": metric, "mode": mode, "trials": records, "counts": outcome_counts(trials),
                          "best_trial": best_trial.trial_id if best_trial else None,
                          "best_is_fallback": bool(choice and choice.fallback), "robust": robust,
                          "over_default_recipe": gain.as_dict() if gain else None,
                          "pareto_front": [{"trial_id": t.trial_id, **{m: r[m] for m in objectives}}
                                           for t, r in front] if front else None}, indent=2))
        return 0
    print(f"{'trial':<10} {'outcome':<22} {'iter':>4} {'steps':>6} {'best ' + metric:>18}  params")
    for r in records:
        params = " ".join(f"{k}={_short(v)}" for k, v in r["params"].items())
        if r["recipe"]:
            params = f"[{r['recipe']}] {params}"
        mark = "*" if best_trial and r["trial_id"] == best_trial.trial_id else " "
        best = r[f"best_{metric}"]
        shown = _short(best) if best is not None or r[f"best_real_{metric}"] is None else \
            f"({_short(r[f'best_real_{metric}'])})"
        print(f"{r['trial_id']:<9}{mark} {r['outcome']:<22} {r['iterations']:>4} {_short(r['steps']):>6} "
              f"{shown:>18}  {params}")
        if r["error"] or r["stop_detail"]:
            print(f"{'':<11}{r['error'] or r['stop_detail']}")
    print("outcomes: " + ", ".join(f"{n} {k}" for k, n in sorted(outcome_counts(trials).items())))
    if line := _failed_compute(trials):
        print(line)
    if choice and not choice.fallback:
        print(f"best (*): trial {choice.trial.trial_id}, {metric}={choice.row[metric]:.4f} at step "
              f"{choice.row.get('step')}")
        if gain:
            print(f"  {gain.line()}")
    elif choice:
        print(f"no healthy trial: every trial failed. Best of the failed ones (*, scores in parentheses are real "
              f"values; the searcher was told the worst): trial {choice.trial.trial_id}, "
              f"{metric}={choice.score(metric):.4f} at step {choice.row.get('step')}, "
              f"{failed_as(choice.trial.failure)}; `export` falls back to it. To change that: "
              f"{advice(choice.trial.failure)}")
    if front:
        modes = ", ".join([f"{metric} {mode}", *(f"{o.metric} {o.mode}" for o in cfg.search.objectives)])
        print(f"Pareto front ({modes}; export takes the best {cfg.search.objectives[0].metric} within "
              f"search.pareto_tolerance={cfg.search.pareto_tolerance:g} of the best {metric}):")
        for t, r in front:
            print(f"  {t.trial_id:<10}" + "  ".join(f"{m}={_short(r[m])}" for m in objectives))
    if (robust := read_summary(run_dir)) is not None:
        print("\n".join(summary_lines(robust)))
    return 0
