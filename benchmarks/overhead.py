"""Per-trial overhead of raytune-llm: start-up cost and in-trial throughput vs. the same loop run bare.

For the demo model (all-MiniLM-L6-v2 on BBC News, max_length 128) this measures:
  * time from trial start (the Tune driver function is entered) to the first training step, split into
    worker-group launch, data loading, model building and the rest;
  * steady-state samples/s inside a Tune trial (the second evaluation window, after warm-up);
  * samples/s of the same loop run bare in this process, with the same number of CPU threads;
and prints their ratios. Usage:

    python benchmarks/overhead.py [--steps 24] [--out benchmarks/results/overhead.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from raytune_llm.bare import BareSession
from raytune_llm.loading import validate_dict
from raytune_llm.search import build_tuner, connect, prepare_run
from raytune_llm.train_loop import RunSpec, run


def experiment(storage: Path, name: str, workers: int, steps: int, model: str, max_length: int) -> Any:
    return validate_dict({
        "model": {"name": model, "max_length": max_length},
        "data": {"source": "builtin:bbc_news"},
        "train": {"max_steps": steps, "eval_every": steps // 2, "batch_size": 16},
        "stability": {"enabled": False},  # measure the loop itself; the guard's checks cost microseconds
        "search": {"num_trials": 1, "scheduler": {"name": "fifo"}},
        "resources": {"num_workers": workers},
        "run": {"name": name, "storage_path": str(storage)},
    })


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


def trial(cfg: Any, storage: Path) -> dict[str, Any]:
    run_dir, info = prepare_run(cfg)
    total = connect(cfg, None)
    build_tuner(cfg, info, total).fit()
    rows = [json.loads(line) for p in run_dir.glob("trial_*/result.json") for line in p.read_text().splitlines()]
    return rows[-1] | {"first": rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--model", default="builtin:minilm")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/overhead.json"))
    parser.add_argument("--bare-spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_spec:
        bare_in_this_process(args.bare_spec)
        return
    storage = Path(tempfile.mkdtemp(prefix="rtl-bench-"))
    results: dict[str, Any] = {"steps": args.steps, "model": args.model, "max_length": args.max_length,
                               "cpu_count": os.cpu_count()}
    connect(experiment(storage, "sizing", 2, args.steps, args.model, args.max_length), None)  # room for 2 workers
    for workers in (1, 2):
        cfg = experiment(storage, f"w{workers}", workers, args.steps, args.model, args.max_length)
        t = time.time()
        in_trial = trial(cfg, storage)
        wall = time.time() - t
        _, info = prepare_run(experiment(storage, f"bare{workers}", workers, args.steps, args.model, args.max_length))
        alone = bare(info, cfg, threads=workers)
        first = in_trial["first"]
        results[f"workers_{workers}"] = {
            "trial_start_to_first_step_s": first["startup_s"],
            "worker_launch_s": first["startup_launch_s"],
            "data_load_s": first["startup_data_s"],
            "model_build_s": first["startup_model_s"],
            "other_setup_s": first["startup_s"] - first["startup_launch_s"] - first["startup_data_s"]
            - first["startup_model_s"],
            "bare_start_to_first_step_s": alone["first"]["startup_s"],
            "trial_samples_per_s": in_trial["samples_per_s"],
            "bare_samples_per_s": alone["samples_per_s"],
            "throughput_ratio": in_trial["samples_per_s"] / alone["samples_per_s"],
            "search_wall_s_incl_ray_init": wall,
        }
    print(f"{'':<34}{'1 worker':>12}{'2 workers':>12}")
    rows = [("trial start -> first step (s)", "trial_start_to_first_step_s"),
            ("  worker launch + imports (s)", "worker_launch_s"), ("  data load (s)", "data_load_s"),
            ("  model build (s)", "model_build_s"), ("  DDP wrap, optimizer, 1st batch (s)", "other_setup_s"),
            ("bare: start -> first step (s)", "bare_start_to_first_step_s"),
            ("samples/s in trial", "trial_samples_per_s"), ("samples/s bare, same threads", "bare_samples_per_s"),
            ("ratio trial / bare", "throughput_ratio")]
    for label, key in rows:
        print(f"{label:<34}" + "".join(f"{results[f'workers_{w}'][key]:>12.3f}" for w in (1, 2)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
