"""A real search, with the default stability settings, on a task that is slow to leave the majority class.

The task is benchmarks/record_curves.py's `paraphrase_imbalanced` (STS-B pairs as "near-paraphrase or not",
71/29; the best configs sit at the majority class for 40-65% of their budget). The guard's old chance rule stopped
every trial of such a search and left nothing to export. This runs the product end to end (`raytune-llm search`
with ASHA and the default guard, then `raytune-llm export`) and checks that the search ends with healthy trials
and an exported model above chance.

    python benchmarks/slow_start_search.py [--trials 6] [--out benchmarks/results/slow_start_search.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import yaml

from raytune_llm.cli.main import main as cli
from raytune_llm.results.trials import load_trials, outcome_counts

REPO = Path(__file__).resolve().parents[1]


def recorder() -> Any:
    """The sibling benchmark module that makes the task's data."""
    spec = importlib.util.spec_from_file_location("record_curves", REPO / "benchmarks" / "record_curves.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "slow_start_search.json")
    args = parser.parse_args()
    rc = recorder()
    task = rc.TASKS["paraphrase_imbalanced"]
    work = Path(tempfile.mkdtemp(prefix="rtl-slow-start-"))
    rc.prepare_task("paraphrase_imbalanced", work)  # writes the derived Parquet splits
    experiment = {
        "model": {"name": "builtin:minilm", "max_length": task["max_length"]},
        "data": {"source": str(work / "paraphrase_imbalanced-data"), "text_pair_column": "text_pair",
                 "labels": task["labels"], "max_train_samples": task["train_samples"],
                 "max_eval_samples": task["eval_samples"]},
        "train": task["train"],
        "search": {"metric": "eval_macro_f1", "num_trials": args.trials,
                   "space": {"optimizer.lr": {"type": "float", "low": 1.0e-5, "high": 5.0e-4, "log": True},
                             "schedule.warmup_ratio": {"type": "categorical", "choices": [0.0, 0.1]}}},
        "resources": {"num_workers": 1},
        "run": {"name": "slow-start", "storage_path": str(work / "runs")},
    }  # stability: the defaults; scheduler: the default ASHA
    path = work / "slow_start.yaml"
    path.write_text(yaml.safe_dump(experiment))
    start = time.time()
    assert cli(["search", str(path)]) == 0
    run_dir = work / "runs" / "slow-start"
    trials = load_trials(run_dir)
    assert cli(["export", str(run_dir), "--out", str(work / "best")]) == 0
    metrics = json.loads((work / "best" / "metrics.json").read_text())
    result = {
        "wall_s": round(time.time() - start), "outcomes": outcome_counts(trials),
        "exported_trial": metrics["trial_id"], "fallback": metrics["fallback"],
        "exported_eval": metrics["exported_eval"], "test": metrics.get("test"),
        "trials": [{"params": t.params, "outcome": t.outcome, "steps": t.last.get("step"),
                    "eval_mcc": [round(r.get("eval_mcc", float("nan")), 3) for r in t.rows]} for t in trials],
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    healthy = sum(n for k, n in result["outcomes"].items() if k in ("done", "early-stopped"))
    mcc = metrics["exported_eval"]["eval_mcc"]
    print(f"healthy trials: {healthy} of {len(trials)}; exported eval MCC {mcc:.3f} (chance 0), macro-F1 "
          f"{metrics['exported_eval']['eval_macro_f1']:.3f}; fallback: {bool(metrics['fallback'])}")


if __name__ == "__main__":
    main()
