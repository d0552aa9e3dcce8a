"""How good are the stability guard's verdicts? Replays its detectors on recorded learning curves and scores
them like a classifier.

The recordings (benchmarks/recordings/*.json, made by benchmarks/record_curves.py) hold runs that went to the
end with the guard off, each labelled by how it ended: `failed` (diverged, or final chance metric at chance) or
`healthy`, with its final rank. The replay feeds every recorded step and evaluation to the real
`raytune_llm.training.stability.StabilityGuard` (the same code a trial runs) and notes where it would have stopped.

Per task and guard setting: runs stopped; precision (stopped runs that did end failed); recall (failed runs
stopped); recall before 30% of the budget; the median point of the stops; how many runs that would have ended in
the top half were stopped (the costly mistake); and the share of all steps saved.

    python benchmarks/guard_quality.py [--sweep] [--recordings DIR] [--out benchmarks/results/guard_quality.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

from raytune_llm.schema import StabilityConfig
from raytune_llm.training.stability import HEALTHY, StabilityGuard, Verdict

REPO = Path(__file__).resolve().parents[1]
EARLY = 0.30  # "stopped early": before this fraction of the run's budget

OFF = {"loss_spike": {"enabled": False}, "grad_explosion": {"enabled": False}, "chance_level": {"enabled": False}}
SETTINGS: dict[str, dict[str, Any]] = {
    "default guard": {},
    "chance_level only": {k: v for k, v in OFF.items() if k != "chance_level"},
    "loss_spike only": {k: v for k, v in OFF.items() if k != "loss_spike"},
    "grad_explosion only": {k: v for k, v in OFF.items() if k != "grad_explosion"},
    "non_finite only": OFF,
    "old chance rule (accuracy <= majority + 0.02 at 25%)": {"legacy_chance": True},
}


class LegacyChanceLevel:
    """The rule the guard used before its chance level was measured: at 25% of the budget, eval accuracy not above
    the majority-class rate + 0.02 (kept here only to compare)."""

    def __init__(self, majority: float, total_steps: int) -> None:
        self.at_step, self.majority, self.done = max(1, math.ceil(0.25 * total_steps)), majority, False

    def check(self, step: int, metrics: dict[str, float], objective: float, peers_learnt: bool | None = None
              ) -> Verdict:
        if self.done or step < self.at_step:
            return HEALTHY
        self.done = True
        if metrics["eval_accuracy"] <= self.majority + 0.02:
            return Verdict("chance_level", "legacy rule")
        return HEALTHY


def replay(run: dict[str, Any], meta: dict[str, Any], setting: dict[str, Any],
           board: dict[int, float] | None = None) -> tuple[str, int]:
    """Where the guard stops this run: (reason, step), or ("", total steps) if it runs to the end.

    `board`: the population so far, as in a search that runs the recorded configs one after another: for each
    earlier run, the first fraction of its budget at which it was above chance (up to where the guard stopped it,
    as a live search would know). This run is added to it. None: no population (a bare run)."""
    setting = dict(setting)
    legacy = setting.pop("legacy_chance", False)
    cfg = StabilityConfig.model_validate({**setting, **({"chance_level": {"enabled": False}} if legacy else {})})
    total = run["total_steps"]
    warmup = round(run["config"].get("schedule.warmup_ratio", 0.0) * total)
    guard = StabilityGuard(cfg, warmup, total, meta["chance_value"], "max", meta["chance_metric"], meta["chance_loss"],
                           meta["sizes"]["eval"])
    if legacy:
        guard.eval_detectors.insert(0, LegacyChanceLevel(meta["majority_rate"], total))
    evals = {e["step"]: e for e in run["evals"]}
    me = id(run)
    for i, (loss, grad_norm) in enumerate(zip(run["step_loss"], run["step_grad_norm"])):
        if verdict := guard.check_step(i, loss, grad_norm):
            return verdict.reason, i
        if (e := evals.get(i + 1)) is not None:
            fraction = (i + 1) / total
            peers = None
            if board is not None:
                if guard.left_chance(e):  # what a trial posts to the search's population board
                    board.setdefault(me, fraction)
                peers = any(f <= fraction for run_id, f in board.items() if run_id != me)
            if verdict := guard.check_eval(i + 1, e, e[meta["objective"]], peers_learnt=peers):
                return verdict.reason, i + 1
    return "", total


def mark_top_half(runs: list[dict[str, Any]]) -> None:
    """Runs that ended healthy in the top half of their own task (ranks are per task)."""
    for r in runs:
        r["top_half"] = r["end"] == "healthy" and r["rank"] <= len(runs) / 2


def score(runs: list[dict[str, Any]], stops: list[tuple[str, int]]) -> dict[str, Any]:
    n = len(runs)
    failed = [r["end"] == "failed" for r in runs]
    stopped = [bool(reason) for reason, _ in stops]
    fractions = [step / r["total_steps"] for r, (_, step) in zip(runs, stops)]
    top_half = [r["top_half"] for r in runs]
    true_stops = sum(s and f for s, f in zip(stopped, failed))
    steps_all = sum(r["total_steps"] for r in runs)
    return {
        "runs": n, "failed": sum(failed), "stopped": sum(stopped),
        "precision": true_stops / sum(stopped) if any(stopped) else None,
        "recall": true_stops / sum(failed) if any(failed) else None,
        "recall_before_30pct": (sum(s and f and fr < EARLY for s, f, fr in zip(stopped, failed, fractions))
                                / sum(failed)) if any(failed) else None,
        "median_stop_fraction": statistics.median([fr for s, fr in zip(stopped, fractions) if s]) if any(stopped)
        else None,
        "top_half_runs": sum(top_half), "top_half_stopped": sum(s and t for s, t in zip(stopped, top_half)),
        "steps_saved": 1 - sum(min(step, r["total_steps"]) for r, (_, step) in zip(runs, stops)) / steps_all,
        "stops": [{"config": r["config"], "end": r["end"], "rank": r["rank"], "reason": reason,
                   "fraction": round(fr, 3)} for r, (reason, _), fr in zip(runs, stops, fractions) if reason],
    }


def sweep(recordings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chance-level rule's settings around the defaults, pooled over all tasks: how the defaults were chosen."""
    rows = []
    for at_fraction in (0.2, 0.25, 0.3):
        for patience in (2, 3, 4):
            for loss_margin in (0.005, 0.01, 0.02):
                for population in (True, False):
                    cl = {"at_fraction": at_fraction, "patience": patience, "loss_margin": loss_margin,
                          "population": population}
                    all_runs, all_stops = [], []
                    for rec in recordings:
                        mark_top_half(rec["runs"])
                        board: dict[int, float] = {}
                        all_runs += rec["runs"]
                        all_stops += [replay(r, rec["meta"], {"chance_level": cl}, board) for r in rec["runs"]]
                    s = score(all_runs, all_stops)
                    rows.append({**cl, **{k: s[k] for k in ("precision", "recall", "recall_before_30pct",
                                                             "top_half_stopped", "top_half_runs", "steps_saved")}})
    return rows


def fmt(value: Any, pct: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if pct else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=Path, default=REPO / "benchmarks" / "recordings")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "guard_quality.json")
    parser.add_argument("--sweep", action="store_true", help="also score the chance-level rule's settings")
    args = parser.parse_args()
    files = sorted(args.recordings.glob("*.json"))
    if not files:
        raise SystemExit(f"no recordings in {args.recordings}; run benchmarks/record_curves.py first")
    results: dict[str, Any] = {}
    pooled: dict[str, tuple[list, list]] = {name: ([], []) for name in SETTINGS}
    for f in files:
        rec = json.loads(f.read_text())
        meta, runs = rec["meta"], rec["runs"]
        mark_top_half(runs)
        results[meta["task"]] = {}
        for name, setting in SETTINGS.items():
            if setting.get("legacy_chance") and meta.get("majority_rate") is None:
                continue  # the old rule reads accuracy against the majority class: a regression has neither
            board: dict[int, float] = {}
            stops = [replay(r, meta, setting, board) for r in runs]
            results[meta["task"]][name] = score(runs, stops)
            pooled[name][0].extend(runs)
            pooled[name][1].extend(stops)
    results["all tasks"] = {name: score(runs, stops) for name, (runs, stops) in pooled.items() if runs}

    header = (f"{'task':<22} {'guard setting':<54} {'runs':>4} {'failed':>6} {'stopped':>7} {'precision':>9} "
              f"{'recall':>6} {'<30%':>5} {'median stop':>11} {'top-half stopped':>16} {'steps saved':>11}")
    print(header)
    print("-" * len(header))
    for task, by_setting in results.items():
        for name, s in by_setting.items():
            print(f"{task:<22} {name:<54} {s['runs']:>4} {s['failed']:>6} {s['stopped']:>7} {fmt(s['precision']):>9} "
                  f"{fmt(s['recall']):>6} {fmt(s['recall_before_30pct']):>5} {fmt(s['median_stop_fraction']):>11} "
                  f"{s['top_half_stopped']:>7} of {s['top_half_runs']:<6} {fmt(s['steps_saved']):>11}")
    if args.sweep:
        results["sweep"] = sweep([json.loads(f.read_text()) for f in files])
        print(f"\n{'at':>4} {'patience':>8} {'loss_margin':>11} {'population':>10} {'precision':>9} {'recall':>6} "
              f"{'<30%':>5} {'top-half stopped':>16} {'steps saved':>11}")
        for r in results["sweep"]:
            print(f"{r['at_fraction']:>4} {r['patience']:>8} {r['loss_margin']:>11} {r['population']!s:>10} "
                  f"{fmt(r['precision']):>9} {fmt(r['recall']):>6} {fmt(r['recall_before_30pct']):>5} "
                  f"{r['top_half_stopped']:>7} of {r['top_half_runs']:<6} {fmt(r['steps_saved']):>11}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
