"""Every number the report page shows, as one JSON-ready dict (`summary.json`), and the per-trial table
(`trials.csv`). The page is rendered from this dict, so what a user reads and what a script reads agree."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from raytune_llm.core.stops import AT_CHANCE, STOP_REASONS, advice
from raytune_llm.report import importance
from raytune_llm.report.collect import GROUPS, RunView, how_stopped, rerun_command


def _count(items: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[str(item)] = out.get(str(item), 0) + 1
    return dict(sorted(out.items()))


def summarise(run: RunView) -> dict[str, Any]:
    by_group = run.compute_by("group")
    total = sum(by_group.values())
    failed = sum(t.compute_s for t in run.trials if t.record.failed)
    best = run.best_trial
    score_imp, score_note = importance.for_score(run)
    fail_imp, fail_note = importance.for_failing(run)
    guard_stops = _count([t.record.stop_reason for t in run.trials
                          if t.group in ("failed by guard", "stopped by guard")])
    at_chance = [t for t in run.trials if t.group == "ended at chance"]
    robust_best = None
    if run.robust and run.robust.get("configs"):
        top = run.robust["configs"][0]
        robust_best = {k: top.get(k) for k in ("source_trial", "mean", "std", "min", "failed_rate", "robust_score")}
    return {
        "run": str(run.run_dir), "name": run.name, "metric": run.metric, "mode": run.mode,
        "trials": len(run.trials),
        "counts": run.counts,  # by outcome, as `status --json` counts them
        "groups": {g: sum(t.group == g for t in run.trials) for g in GROUPS},
        "scheduler_stops_by_rounds": _count([t.rounds for t in run.trials if t.group == "stopped by scheduler"]),
        "guard_stops_by_reason": guard_stops,
        # Each stop reason seen, as the one table of stop reasons (core.stops) has it.
        "guard_stop_reasons": {r: {"failure": STOP_REASONS[r].failure, "advice": advice(r),
                                   "setting": STOP_REASONS[r].setting} for r in guard_stops if r in STOP_REASONS},
        # Trials that learnt nothing, whoever stopped them: failures, counted in compute.failed.
        "ended_at_chance": {"trials": len(at_chance), "compute": sum(t.compute_s for t in at_chance),
                            "stopped_by": _count([how_stopped(t.record) for t in at_chance]),
                            "advice": advice(AT_CHANCE)} if at_chance else None,
        "errors": [{"trial_id": t.trial_id, "error": t.record.error} for t in run.trials if t.group == "error"],
        "best": None if best is None else {
            "trial_id": best.trial_id, "value": run.choice.score(run.metric), "step": run.choice.row.get("step"),
            "fallback": run.choice.fallback, "params": best.params, "rerun": rerun_command(run, best),
        },
        "robust_best": robust_best,
        "over_default_recipe": {**run.gain.as_dict(), "line": run.gain.line()} if run.gain else None,
        "compute": {
            "unit": "worker-seconds (wall time x workers, start-up included)",
            "total": total, "failed": failed, "failed_share": failed / total if total else 0.0,
            "by_group": {g: by_group.get(g, 0.0) for g in GROUPS if g in by_group},
            "by_method": run.compute_by("peft.method") if any("peft.method" in t.params for t in run.trials)
            else None,
        },
        "importance": {"score": score_imp, "score_note": score_note, "failing": fail_imp, "failing_note": fail_note},
        "chance_level": run.chance,
        "rungs": run.rungs,
    }


def write_trials_csv(run: RunView, path: Path) -> Path:
    params = list(dict.fromkeys(k for t in run.trials for k in t.params))
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["trial_id", "outcome", "group", "stop_reason", "rounds", "steps", "compute_s",
                         f"best_{run.metric}", "recipe", *params, "error"])
        for t in run.trials:
            writer.writerow([t.trial_id, t.record.outcome, t.group, t.record.stop_reason, t.rounds, t.stop_step,
                             f"{t.compute_s:.1f}", "" if t.best is None else t.best, t.record.recipe or "",
                             *(t.params.get(p, "") for p in params), t.record.error])
    return path
