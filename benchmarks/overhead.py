"""What a trial costs besides training, per executor, and a 20-trial search against Trainer.hyperparameter_search.

For the demo model (all-MiniLM-L6-v2 on BBC News) this measures, in one run:
  1. start-up: from the moment Tune starts a trial (its `on_trial_start`) to the trial's first training step,
     for the first trial of a search (cold) and the later ones (warm), per executor: in-process (1 worker),
     Ray Train with 1 worker, Ray Train with 2 workers; split by our own timers (launch, data, model) and, for
     Train trials, by Ray Train's controller log (worker actors created, train context initialised);
  2. steady samples/s inside a trial against the same loop run bare in a fresh process with the same threads;
  3. the wall time of the same 20-trial ASHA search of short trials under each executor, beside
     `transformers.Trainer.hyperparameter_search(backend="optuna")` with Optuna's successive-halving pruner on
     the same model, data, space, steps, evaluations and number of trials.
Ray is started once before everything (its 5-7 s are not in any figure). Usage:

    python benchmarks/overhead.py [--trials 20] [--out benchmarks/results/overhead.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from hf_search import hf_search, work_plan  # noqa: E402

from raytune_llm.config.loading import validate_dict  # noqa: E402
from raytune_llm.runs.prepare import prepare_run  # noqa: E402
from raytune_llm.search.driver import build_tuner, connect, local_cpus  # noqa: E402
from raytune_llm.training.bare import BareSession  # noqa: E402
from raytune_llm.training.loop import run  # noqa: E402
from raytune_llm.training.spec import RunSpec  # noqa: E402

ARMS = {"in-process, 1 worker": ("tune", 1), "Train, 1 worker": ("train", 1), "Train, 2 workers": ("train", 2)}
SPACE = {"optimizer.lr": {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True}}
SAME_WORK = "Trainer.hyperparameter_search, same work"  # our trials, each stopped where ASHA stopped it
STEPS = re.compile(r"\[Worker Group Initialization\] (.+?) in ([0-9.]+)s")


def experiment(storage: Path, name: str, executor: str, workers: int, args: argparse.Namespace, trials: int,
               steps: int, scheduler: dict[str, Any]) -> Any:
    return validate_dict({
        "model": {"name": args.model, "max_length": args.max_length},
        "data": {"source": "builtin:bbc_news", "max_eval_samples": args.eval_rows},
        "train": {"max_steps": steps, "eval_every": args.eval_every, "batch_size": 16, "eval_batch_size": 32},
        "stability": {"enabled": False},  # measure the executors; the guard's checks cost microseconds
        "search": {"num_trials": trials, "scheduler": scheduler, "space": SPACE,
                   "searcher": {"name": "tpe", "seed": 0}},
        "resources": {"num_workers": workers, "executor": executor},
        "run": {"name": name, "storage_path": str(storage)},
    })


class TrialStarts:
    """When Tune started and ended each trial (a Tune callback; built lazily so that this module imports without
    Ray)."""

    def __new__(cls) -> Any:
        from ray.tune import Callback

        class _Starts(Callback):
            def __init__(self) -> None:
                self.at: dict[str, float] = {}
                self.ended: dict[str, float] = {}

            def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                self.at.setdefault(trial.trial_id, time.time())

            def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                self.ended.setdefault(trial.trial_id, time.time())

        return _Starts()


def controller_steps(since: float) -> dict[str, float]:
    """Median duration of each worker-group start-up step in the controller logs Ray Train wrote since `since`."""
    import ray

    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs" / "train"
    seen: dict[str, list[float]] = {}
    for log in logs.glob("ray-train-sys-controller-*.log"):
        if log.stat().st_mtime < since:
            continue
        for line in log.read_text().splitlines():
            if m := STEPS.search(line):
                seen.setdefault(m.group(1), []).append(float(m.group(2)))
    return {step: statistics.median(v) for step, v in seen.items()}


def search(cfg: Any) -> tuple[list[dict[str, Any]], Any, float, Path]:
    """Run a search; each trial's first report, when Tune started and ended each trial, the wall time of fit()."""
    run_dir, info = prepare_run(cfg)
    total = connect(cfg, None)
    starts = TrialStarts()
    tuner = build_tuner(cfg, info, total, callbacks=[starts])
    t = time.time()
    tuner.fit()
    wall = time.time() - t
    firsts = []
    for result in run_dir.glob("trial_*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines()]
        if rows:
            firsts.append(rows[0] | {"last": rows[-1]})
    return sorted(firsts, key=lambda r: r["first_step_at"]), starts, wall, run_dir


def startup(args: argparse.Namespace, storage: Path) -> dict[str, Any]:
    out = {}
    for label, (executor, workers) in ARMS.items():
        if label not in args.arms:
            continue
        cfg = experiment(storage, f"startup-{executor}{workers}", executor, workers, args, args.startup_trials,
                         2 * args.eval_every, {"name": "fifo"})
        cfg.search.max_concurrent_trials = 1  # one at a time: a later trial may take over an earlier's process
        began = time.time()
        firsts, starts, _, _ = search(cfg)
        to_first = [r["first_step_at"] - starts.at[r["trial_id"]] for r in firsts]
        # One trial at a time: from the end of one (Tune's on_trial_complete) to the next one's first step is
        # what a slot loses between trials, whatever Tune counts as the trial's start.
        handover = [b["first_step_at"] - starts.ended[a["trial_id"]] for a, b in itertools.pairwise(firsts)]
        out[label] = {
            "cold_start_to_first_step_s": to_first[0],
            "warm_start_to_first_step_s": statistics.median(to_first[1:]),
            "previous_end_to_first_step_s": statistics.median(handover),
            "warm_launch_s": statistics.median(r["startup_launch_s"] for r in firsts[1:]),
            "warm_data_s": statistics.median(r["startup_data_s"] for r in firsts[1:]),
            "warm_model_s": statistics.median(r["startup_model_s"] for r in firsts[1:]),
            "warm_cached": sorted({r.get("startup_cached", "") for r in firsts[1:]}),
            "samples_per_s": statistics.median(r["last"]["samples_per_s"] for r in firsts),
            "controller_log_s": controller_steps(began) if executor == "train" else {},
        }
    return out


def bare(info: Any, cfg: Any, threads: int) -> dict[str, Any]:
    """The same loop, bare, in a fresh process (not this one, which hosts the Ray driver)."""
    spec = RunSpec(model_path=info.model_path, tokenizer_path=info.tokenizer_path, data_path=info.data_path,
                   label_names=info.label_names, train=cfg.train.model_dump(mode="json"), torch_threads=threads,
                   stability=cfg.stability.model_dump(mode="json"))
    proc = subprocess.run([sys.executable, __file__, "--bare-spec", json.dumps(spec.to_dict())],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bare_in_this_process(spec_json: str) -> None:
    spec = json.loads(spec_json)
    spec["started_at"] = time.time()
    session = BareSession()
    run(RunSpec(**spec), session)
    print(json.dumps(session.reports[-1] | {"first": session.reports[0]}))


def searches(args: argparse.Namespace, storage: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    steps = args.rounds * args.eval_every
    asha = {"name": "asha", "grace_period": 1, "reduction_factor": 3}
    for label, (executor, workers) in ARMS.items():
        if label not in args.arms or "search" not in args.parts:
            continue
        cfg = experiment(storage, f"search-{executor}{workers}", executor, workers, args, args.trials, steps, asha)
        # As many at once as `search` would run on a Ray of its own here (this one is sized for 2-worker trials).
        cfg.search.max_concurrent_trials = int(local_cpus(cfg.resources) // cfg.resources.trial_cpus)
        firsts, _, wall, run_dir = search(cfg)
        out[label] = {"wall_s": wall, "trials": len(firsts),
                      "optimizer_steps": sum(r["last"]["step"] for r in firsts), "plan": work_plan(run_dir)}
    if "hf" in args.parts:
        _, info = prepare_run(experiment(storage, "hf-data", "tune", 1, args, 1, steps, asha))
        wall, hf_steps = hf_search(info, args.trials, steps, args.eval_every, storage / "hf")
        out["Trainer.hyperparameter_search"] = {"wall_s": wall, "trials": args.trials, "optimizer_steps": hf_steps}
        # The same work: the first measured arm's trials, each stopped where ASHA stopped it.
        if plan := next((r["plan"] for r in out.values() if "plan" in r), None):
            wall, hf_steps = hf_search(info, len(plan), steps, args.eval_every, storage / "hf-replay", plan)
            out[SAME_WORK] = {"wall_s": wall, "trials": len(plan), "optimizer_steps": hf_steps}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:minilm")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--eval-rows", type=int, default=64, help="eval rows per evaluation")
    parser.add_argument("--eval-every", type=int, default=4, help="optimizer steps per evaluation round")
    parser.add_argument("--rounds", type=int, default=6, help="evaluation rounds of a full trial in the search")
    parser.add_argument("--startup-trials", type=int, default=4)
    parser.add_argument("--trials", type=int, default=20, help="trials of the search")
    parser.add_argument("--parts", nargs="+", choices=["startup", "bare", "search", "hf"],
                        default=["startup", "bare", "search", "hf"], help="what to measure")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), help="executors to measure")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/overhead.json"))
    parser.add_argument("--keep-runs", action="store_true", help="keep the runs' folders (deleted by default)")
    parser.add_argument("--bare-spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_spec:
        bare_in_this_process(args.bare_spec)
        return
    # Its runs are gigabytes (every trial's checkpoints): deleted at the end unless asked to keep them.
    storage = Path(tempfile.mkdtemp(prefix="rtl-bench-"))
    try:
        results = measure(args, storage)
    finally:
        if args.keep_runs:
            print(f"runs kept in {storage}")
        else:
            shutil.rmtree(storage)
    report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


def measure(args: argparse.Namespace, storage: Path) -> dict[str, Any]:
    sizing = experiment(storage, "sizing", "train", 2, args, 1, args.eval_every, {"name": "fifo"})
    connect(sizing, None)  # Ray once, with room for a 2-worker trial
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                if k not in ("bare_spec", "keep_runs")}
    results: dict[str, Any] = {"args": settings, "cpu_count": os.cpu_count()}
    if "startup" in args.parts:
        results["startup"] = startup(args, storage)
    if "bare" in args.parts:
        bare_cfg = experiment(storage, "bare", "tune", 1, args, 1, 2 * args.eval_every, {"name": "fifo"})
        _, info = prepare_run(bare_cfg)
        for threads in (1, 2):
            results[f"bare_{threads}_threads"] = bare(info, bare_cfg, threads)["samples_per_s"]
    results["search"] = searches(args, storage)
    return results

STARTUP_ROWS = [("trial start -> first step, first trial", "cold_start_to_first_step_s"),
                ("trial start -> first step, later trials", "warm_start_to_first_step_s"),
                ("previous trial's end -> first step", "previous_end_to_first_step_s"),
                ("  of which launch (loop entered)", "warm_launch_s"), ("  data", "warm_data_s"),
                ("  model", "warm_model_s")]


def report_startup(results: dict[str, Any]) -> None:
    s = results["startup"]
    print(f"\n{'start-up (s)':<42}" + "".join(f"{a:>22}" for a in s))
    for label, key in STARTUP_ROWS:
        print(f"{label:<42}" + "".join(f"{s[a][key]:>22.2f}" for a in s))
    print(f"{'samples/s in trial':<42}" + "".join(f"{s[a]['samples_per_s']:>22.1f}" for a in s))
    for a in s:
        if s[a]["controller_log_s"]:
            steps = ", ".join(f"{k} {v:.2f}" for k, v in s[a]["controller_log_s"].items())
            print(f"controller log, {a} (median s): {steps}")


def report(results: dict[str, Any]) -> None:
    if "startup" in results:
        report_startup(results)
    if "bare_1_threads" in results:
        print(f"bare loop samples/s: 1 thread {results['bare_1_threads']:.1f}, "
              f"2 threads {results['bare_2_threads']:.1f}")
    runs = results["search"]
    hf = runs.get("Trainer.hyperparameter_search")
    print(f"\n{'search of ' + str(results['args']['trials']) + ' trials, ASHA':<42}{'wall (s)':>10}{'steps':>7}"
          + (f"{'/ HF':>7}{'s per step / HF':>17}" if hf else ""))
    for arm, r in runs.items():
        line = f"{arm:<42}{r['wall_s']:>10.1f}{r['optimizer_steps']:>7}"
        if hf:
            per_step = (r["wall_s"] / r["optimizer_steps"]) / (hf["wall_s"] / hf["optimizer_steps"])
            line += f"{r['wall_s'] / hf['wall_s']:>7.2f}{per_step:>17.2f}"
        print(line)
    if same := runs.get(SAME_WORK):
        arm = next(a for a, r in runs.items() if "plan" in r)
        ratio = runs[arm]["wall_s"] / same["wall_s"]
        print(f"{arm} against HF on the same trials and stops: wall {ratio:.2f}x "
              f"({runs[arm]['optimizer_steps']} against {same['optimizer_steps']} optimizer steps)")


if __name__ == "__main__":
    main()
