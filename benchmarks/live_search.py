"""Does the search simulation agree with reality? Runs the real product (`raytune-llm search`, then `export`) on
the task and space of benchmarks/search_efficiency.py, for random search and for TPE + ASHA + guard, a few search
seeds each, and puts every live search beside its simulation (the same arm, seed and number of trials, replayed on
the recorded curves).

The task is the recordings' sst2 (all-MiniLM-L6-v2, 1600 train / 400 eval rows, max_length 48, one epoch of 100
steps, an evaluation every 10 steps; the labelled 1821-row test split), the space `peft.method` x one
log-uniform `optimizer.lr` range, two single-worker trials at a time (in-process executor). What is compared:
- per search: the configs proposed (random search: the same seeded draws in both), the steps trained, the best
  eval score, and the test score of what export ships (live: export's own test scoring; simulated: the recorded
  test score of the picked run at the picked evaluation, `record_curves.py --test-scores`);
- per live trial: its eval curve against the recorded run the simulation replays for it (the nearest recorded
  run of its PEFT method in log learning rate, recorded with another training seed): the surrogate's error.

    python benchmarks/live_search.py [--seeds 3] [--random-trials 6] [--tpe-trials 12]
                                     [--out benchmarks/results/live_search.json] [--resimulate]

About 12 minutes per seed on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import search_efficiency as bench  # noqa: E402
from record_curves import DATA, TASKS  # noqa: E402

TASK = "sst2"
ARMS = {"random (full trials)": bench.ARMS["random (full trials)"],
        "TPE + ASHA + guard": bench.ARMS["TPE + ASHA + guard"]}


def experiment(arm: dict[str, Any], seed: int, trials: int, storage: Path, name: str) -> dict[str, Any]:
    """The recordings' sst2 run as a user's search config (data subsampled with seed 0, as recorded)."""
    t = TASKS[TASK]
    return {
        "model": {"name": "builtin:minilm", "max_length": t["max_length"]},
        "data": {"source": str(DATA / t["source"]), "labels": t["labels"], "max_train_samples": t["train_samples"],
                 "max_eval_samples": t["eval_samples"]},
        "train": {**t["train"], "seed": 0},
        "search": {"metric": t["objective"], "mode": "max", "num_trials": trials, "space": bench.SPACE,
                   "max_concurrent_trials": bench.CONCURRENT,
                   "searcher": {"name": arm["searcher"], "seed": seed}, "scheduler": {"name": arm["scheduler"]}},
        "stability": {"enabled": arm["guard"] is not None, **(arm["guard"] or {})},
        "resources": {"num_workers": 1, "cpus_per_worker": 1},
        "run": {"name": name, "storage_path": str(storage)},
    }


def live(arm: dict[str, Any], seed: int, trials: int, work: Path) -> dict[str, Any]:
    from raytune_llm.core.outcomes import is_failure
    from raytune_llm.results.trials import load_trials

    name = f"{arm['searcher']}-{arm['scheduler']}-{seed}"
    path = work / f"{name}.yaml"
    # In the space's own order: the searcher draws params in that order, as the simulation's does.
    path.write_text(yaml.safe_dump(experiment(arm, seed, trials, work / "runs", name), sort_keys=False))
    started = time.monotonic()
    subprocess.run(["raytune-llm", "search", str(path)], check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - started
    subprocess.run(["raytune-llm", "export", str(work / "runs" / name), "--out", str(work / f"{name}-best")],
                   check=True, stdout=subprocess.DEVNULL)
    exported = json.loads((work / f"{name}-best" / "metrics.json").read_text())
    metric = TASKS[TASK]["objective"]
    rows = []
    for t in load_trials(work / "runs" / name):
        # A guard stop reports the worst value in the metric's place: not a score the trial reached.
        evals = [r[metric] for r in t.rows if "eval_loss" in r and not is_failure(str(r.get("stop_reason") or ""))]
        rows.append({"params": {k: t.params[k] for k in bench.SPACE}, "steps": int(t.last.get("step", 0)),
                     "evals": evals, "outcome": t.outcome})
    best = max((e for r in rows for e in r["evals"]), default=None)
    return {"wall_s": wall, "steps": sum(r["steps"] for r in rows), "best_eval": best,
            "test": exported["test"][metric.replace("eval_", "test_")], "trials": rows}


def simulated(arm: dict[str, Any], rec: Any, seed: int, trials: int) -> dict[str, Any]:
    sim = bench.simulate(arm, rec, seed, max_trials=trials)
    best, pick = bench.at(sim["timeline"], math.inf)
    return {"steps": sum(t["step"] for t in sim["trials"]), "best_eval": best, "test": bench.test_score(pick),
            "trials": [{"params": t["params"], "replayed": {k: t["run"]["config"][k] for k in bench.SPACE},
                        "steps": t["step"], "end": t["end"]} for t in sim["trials"]]}


def surrogate_error(rec: Any, trial: dict[str, Any]) -> float | None:
    """Mean |live eval - recorded eval| over the rounds both have, against the run the simulation replays."""
    recorded = [e[TASKS[TASK]["objective"]] for e in rec.run_for(trial["params"])["evals"]]
    pairs = list(zip(trial["evals"], recorded))
    return statistics.fmean(abs(a - b) for a, b in pairs) if pairs else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--random-trials", type=int, default=6)
    parser.add_argument("--tpe-trials", type=int, default=12)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "live_search.json")
    parser.add_argument("--resimulate", action="store_true",
                        help="keep the live searches in --out, redo their simulations (e.g. after new test scores)")
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rec = bench.recorded(REPO / "benchmarks" / "recordings" / f"{TASK}.json")
    work = Path(tempfile.mkdtemp(prefix="rtl-live-"))
    report: dict[str, Any] = {"task": TASK, "space": bench.SPACE, "arms": {}}
    print(f"{'arm':22} {'seed':>4} | {'live: steps':>11} {'best':>6} {'test':>6} {'wall s':>7} | "
          f"{'sim: steps':>10} {'best':>6} {'test':>6} | {'same configs':>12} {'same stop':>9} {'surrogate err':>13}")
    done = json.loads(args.out.read_text())["arms"] if args.resimulate else {}
    report["arms"] = {name: [] for name in ARMS}
    seeds = min(len(runs) for runs in done.values()) if done else args.seeds
    for seed in range(seeds):  # seed by seed, both arms: a run stopped early still compares them
        for name, arm in ARMS.items():
            trials = args.random_trials if arm["searcher"] == "random" else args.tpe_trials
            real = done[name][seed]["live"] if done else live(arm, seed, trials, work)
            sim = simulated(arm, rec, seed, trials)
            def key(t: dict) -> tuple:
                return t["params"]["peft.method"], round(t["params"]["optimizer.lr"], 12)

            sim_steps = {key(t): t["steps"] for t in sim["trials"]}
            same = sum(key(t) in sim_steps for t in real["trials"])
            # Of those, stopped after as many steps live as in the simulation (ASHA, the guard, or the end).
            same_stop = sum(sim_steps.get(key(t)) == t["steps"] for t in real["trials"])
            errors = [e for t in real["trials"] if (e := surrogate_error(rec, t)) is not None]
            err = statistics.fmean(errors) if errors else None
            report["arms"][name].append({"seed": seed, "trials": trials, "live": real, "simulated": sim,
                                         "same_configs": same, "same_stop": same_stop,
                                         "surrogate_mean_abs_error": err})
            print(f"{name:22} {seed:>4} | {real['steps']:>11} {real['best_eval']:6.3f} {real['test']:6.3f} "
                  f"{real['wall_s']:7.0f} | {sim['steps']:>10} {sim['best_eval']:6.3f} "
                  f"{'-' if sim['test'] is None else format(sim['test'], '6.3f'):>6} | {same:>5}/{trials:<6} "
                  f"{same_stop:>5}/{same:<3} "
                  f"{'-' if err is None else format(err, '.3f'):>13}", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
