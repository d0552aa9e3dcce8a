"""Stability guard on vs. off: the same search (same seeded configs, same trial budget) over a space with
unstable regions (high learning rates, no warmup, no clipping), on SST-2 with all-MiniLM-L6-v2.

Three arms: guard off and guard on with no other early stopping (FIFO: the guard's own effect), and guard on
with ASHA (the product's default). Prints, per arm: trials by outcome, compute (optimizer steps) in all and on
trials that end failed, the share of a full trial that a diverged trial cost, the best score; then the
robustness check of the guard-on winner. Failed = stopped as unstable, or final chance metric (MCC) <= its
chance level (+0.02).

    python benchmarks/stability.py [--trials 6] [--train-samples 1200] [--seeds 3] [--data ../shared/data/sst2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# A shared, busy machine can take over a minute to start a worker group; do not fail a trial for that.
os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "300")

from raytune_llm.config.loading import validate_dict
from raytune_llm.core.errors import UserError
from raytune_llm.results.choice import best_result
from raytune_llm.results.trials import TrialRecord, load_trials, outcome_counts
from raytune_llm.runs.prepare import prepare_run
from raytune_llm.search.driver import build_tuner, connect
from raytune_llm.search.robust import run_robust

REPO = Path(__file__).resolve().parents[1]
SPACE = {
    "optimizer.lr": {"type": "float", "low": 1.0e-5, "high": 3.0e-2, "log": True},
    "schedule.warmup_ratio": {"type": "categorical", "choices": [0.0, 0.1]},
    "grad_clip": {"type": "categorical", "choices": [None, 1.0]},
    "optimizer.weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
}


def experiment(args: argparse.Namespace, storage: Path, name: str, guard: bool, scheduler: str) -> Any:
    return validate_dict({
        "model": {"name": "builtin:minilm", "max_length": 48},
        "data": {"source": str(args.data), "labels": ["negative", "positive"], "max_train_samples": args.train_samples,
                 "max_eval_samples": 300},
        "train": {"epochs": 1, "batch_size": 16, "eval_every": max(1, args.train_samples // 16 // 15)},  # 15 evals
        "search": {"num_trials": args.trials, "max_concurrent_trials": 1, "space": SPACE,
                   # All trials in TPE's random start-up phase: both arms sample exactly the same configs.
                   "searcher": {"seed": 0, "n_startup_trials": args.trials},
                   "scheduler": {"name": scheduler, "grace_period": 1, "reduction_factor": 2}},
        "stability": {"enabled": guard},
        "resources": {"num_workers": 2},
        "run": {"name": name, "storage_path": str(storage)},
    })


def failed(t: TrialRecord, chance_metric: str, chance_value: float) -> bool:
    return t.failed or (t.last.get(chance_metric, 0.0) <= chance_value + 0.02
                        and t.last.get("step") == t.last.get("total_steps"))


def arm(args: argparse.Namespace, storage: Path, guard: bool, scheduler: str) -> dict[str, Any]:
    name = f"guard-{'on' if guard else 'off'}-{scheduler}"
    cfg = experiment(args, storage, name, guard, scheduler)
    run_dir, info = prepare_run(cfg)
    start = time.time()
    build_tuner(cfg, info, connect(cfg, None)).fit()
    trials = load_trials(run_dir)
    steps = [int(t.last.get("step", 0)) for t in trials]
    full = max(int(t.last.get("total_steps", 0)) for t in trials)
    diverged = [t for t in trials if t.stop_reason in ("non_finite", "loss_spike", "grad_explosion")]
    try:
        _, best = best_result(trials, "eval_accuracy", "max")
    except UserError:  # every trial failed
        best = {"eval_accuracy": float("nan")}
    is_failed = [failed(t, info.chance_metric, info.chance_value) for t in trials]
    return {
        "run_dir": str(run_dir), "wall_s": time.time() - start, "outcomes": outcome_counts(trials),
        "steps_total": sum(steps), "steps_on_failed": sum(s for s, f in zip(steps, is_failed) if f),
        "failed_trials": sum(is_failed),
        "max_diverged_cost": max((int(t.last["step"]) / full for t in diverged), default=None),
        "best_eval_accuracy": best["eval_accuracy"], "chance_value": info.chance_value,
        "trials": [{"params": t.params, "outcome": t.outcome, "steps": int(t.last.get("step", 0)),
                    "final_accuracy": t.last.get("eval_accuracy")} for t in trials],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--train-samples", type=int, default=1200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "sst2")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/stability.json"))
    args = parser.parse_args()
    if not (args.data / "train.parquet").is_file():
        raise SystemExit(f"--data {args.data}: no train.parquet; point it at the SST-2 Parquet splits")
    storage = Path(tempfile.mkdtemp(prefix="rtl-stability-"))
    arms = {"guard off": (False, "fifo"), "guard on": (True, "fifo"), "guard on + ASHA": (True, "asha")}
    results: dict[str, Any] = {label: arm(args, storage, guard, sched) for label, (guard, sched) in arms.items()}
    try:
        robust = run_robust(Path(results["guard on"]["run_dir"]), top_k=1, seeds=args.seeds, score="mean-std",
                            address=None)
        results["robust_winner"] = robust["configs"][0] if robust["configs"] else None
    except UserError as exc:
        print(f"robust check skipped: {exc}")
        results["robust_winner"] = None

    rows = [("trials by outcome", lambda r: ", ".join(f"{n} {k}" for k, n in sorted(r["outcomes"].items()))),
            ("optimizer steps, all trials", lambda r: r["steps_total"]),
            ("steps on trials that end failed", lambda r: r["steps_on_failed"]),
            ("failed trials", lambda r: r["failed_trials"]),
            ("diverged trial cost (max, of full)", lambda r: "-" if r["max_diverged_cost"] is None
             else f"{r['max_diverged_cost']:.0%}"),
            ("best eval accuracy", lambda r: f"{r['best_eval_accuracy']:.4f}"),
            ("wall time (s)", lambda r: f"{r['wall_s']:.0f}")]
    print("\n" + f"{'':<36}" + "".join(f"{label:<32}" for label in arms))
    for label, get in rows:
        print(f"{label:<36}" + "".join(f"{get(results[a])!s:<32}" for a in arms))
    if (w := results["robust_winner"]) is not None:
        print(f"robust check of the guard-on winner over {len(w['values'])} seeds: mean {w['mean']:.4f}, "
              f"std {w['std']:.4f}, min {w['min']:.4f}, failed {w['failed_rate']:.0%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
