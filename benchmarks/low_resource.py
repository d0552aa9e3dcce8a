"""Stability levers where instability is worst: a few hundred labelled rows (Dodge et al. 2020, Mosbach et al. 2021).

SST-2 and Rotten Tomatoes, their train splits subsampled (stratified, seeded, the same rows for every arm and seed)
to 100, 300 and 1,000 rows; all-MiniLM-L6-v2 fine-tuned with the product's default recipe (full fine-tuning, lr
1e-4, warmup 0.1, linear decay, clipping 1.0, weight decay 0.01) for a fixed budget of optimiser steps (small data
needs more passes: 150 steps of 16 rows by default), the stability guard on, with and without each lever:

- `baseline`: the recipe alone;
- `eda`: train.augment {method: eda, alpha: 0.1, probability: 0.5} (the defaults; Wei & Zou's alpha);
- `cutoff`: train.augment {method: cutoff, alpha: 0.1, probability: 0.5};
- `rdrop`: train.consistency {alpha: 1.0}.

Each arm runs over --seeds seeds (model head, data order, edits); the score is the final model's accuracy on the
labelled test split (its first 1,000 rows, the same for every run; nothing is selected on it). Reported per dataset,
size and arm: mean, standard deviation and the failed-run rate (the guard stopped it, or its final MCC <= 0.02: at
chance). The search arm (--search-trials, default 12) runs a real `raytune-llm search` over whether and how much to
augment (augment.method, augment.alpha, augment.probability, consistency.alpha), scored on the validation split; its
pick is trained again over --search-seeds seeds and scored on test like the arms.

    python benchmarks/low_resource.py [--datasets sst2,rotten_tomatoes] [--sizes 100,300,1000] [--seeds 10]
        [--arms baseline,eda,cutoff,rdrop] [--steps 150] [--search-trials 12] [--search-seeds 5] [--search-sizes 300]

Prints a table and writes benchmarks/results/low_resource.json (each run's score beside the summary).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pandas as pd
import yaml

from raytune_llm.config.loading import validate_dict
from raytune_llm.recipes.library import library
from raytune_llm.runs.prepare import prepare_run
from raytune_llm.schema import PeftMethod
from raytune_llm.schema.space import apply_params

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
LABELS = ["negative", "positive"]
ARMS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "eda": {"augment.method": "eda", "augment.alpha": 0.1, "augment.probability": 0.5},
    "cutoff": {"augment.method": "cutoff", "augment.alpha": 0.1, "augment.probability": 0.5},
    "rdrop": {"consistency.alpha": 1.0},
}
SPACE = {
    "augment.method": {"type": "categorical", "choices": ["none", "eda", "cutoff"]},
    "augment.alpha": {"type": "float", "low": 0.05, "high": 0.3, "when": {"augment.method": ["eda", "cutoff"]}},
    "augment.probability": {"type": "float", "low": 0.2, "high": 1.0, "when": {"augment.method": ["eda", "cutoff"]}},
    "consistency.alpha": {"type": "categorical", "choices": [0.0, 0.5, 1.0, 2.0]},
}
FAILED_MCC = 0.02


def subsample(dataset: str, rows: int, out: Path) -> Path:
    """The dataset with its train split cut to `rows` rows, stratified by label (seeded: the same rows for every
    arm and seed), validation and test as they are."""
    folder = out / f"{dataset}-{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    train = pd.read_parquet(DATA / dataset / "train.parquet")
    share = rows / len(train)
    parts = [g.sample(max(1, round(share * len(g))), random_state=0) for _, g in train.groupby("label")]
    pd.concat(parts).sample(frac=1.0, random_state=0).head(rows).to_parquet(folder / "train.parquet", index=False)
    for split in ("validation", "test"):
        pd.read_parquet(DATA / dataset / f"{split}.parquet").to_parquet(folder / f"{split}.parquet", index=False)
    return folder


def recipe_train(steps: int) -> dict[str, Any]:
    """The default recipe for full fine-tuning as a `train:` section, run for `steps` steps."""
    train: dict[str, Any] = {"max_steps": steps, "batch_size": 16, "eval_batch_size": 128}
    for path, value in library().default(PeftMethod.full, "encoder").params.items():
        node = train
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return train


def experiment(folder: Path, storage: Path, name: str, eval_split: str, train: dict[str, Any],
               **search: Any) -> dict[str, Any]:
    return {"model": {"name": "builtin:minilm", "max_length": 64},
            # 1,000 test rows (the same for every run) score each run; the search arm's validation split whole
            "data": {"source": str(folder), "labels": LABELS, "eval_split": eval_split, "test_split": None,
                     "max_eval_samples": 1000 if eval_split == "test" else None},
            "train": train, "search": {"metric": "eval_accuracy", "mode": "max", **search},
            "resources": {"num_workers": 1, "torch_threads": os.cpu_count() or 1},
            "run": {"name": name, "storage_path": str(storage)}}


def seed_runs(folder: Path, storage: Path, train: dict[str, Any], params: dict[str, Any], seeds: int,
              tag: str) -> list[dict[str, Any]]:
    """The recipe with `params`, once per seed, in this process, scored on test at its last step."""
    from raytune_llm.search.driver import train_template
    from raytune_llm.training.bare import BareSession
    from raytune_llm.training.loop import run

    cfg = validate_dict(experiment(folder, storage, "seeds", "test", {**train, "eval_every": train["max_steps"]}))
    _, info = prepare_run(cfg)
    out = []
    for seed in range(seeds):
        settings = apply_params(cfg.train, {**params, "seed": seed})
        spec = train_template(cfg, info)
        spec.train = settings.model_dump(mode="json")
        t = time.perf_counter()
        last = run(spec, BareSession(None, device="cpu"))
        failed = bool(last.get("stop_reason")) or last.get("eval_mcc", 0.0) <= FAILED_MCC
        # a run the guard stopped between evaluations has no test score (counted in the failed rate only)
        score = last.get("real_eval_accuracy", last.get("eval_accuracy")) if "eval_loss" in last else None
        out.append({"seed": seed, "test_accuracy": score,
                    "test_mcc": last.get("eval_mcc"), "stop_reason": last.get("stop_reason") or "",
                    "failed": failed, "seconds": time.perf_counter() - t})
        print(f"  {tag} seed {seed}: test acc {score if score is None else round(score, 4)}"
              f"{'  FAILED' if failed else ''} "
              f"({out[-1]['seconds']:.0f}s)", flush=True)
    return out


def search_pick(folder: Path, storage: Path, train: dict[str, Any], trials: int) -> dict[str, Any]:
    """A real search over the levers on the validation split; the pick's params."""
    from raytune_llm.cli.main import main
    from raytune_llm.results.choice import choose
    from raytune_llm.results.trials import load_trials

    cfg = experiment(folder, storage, "search", "validation", {**train, "eval_every": max(1, train["max_steps"] // 5)},
                     num_trials=trials, space=SPACE, max_concurrent_trials=1)
    path = storage / "search.yaml"
    path.write_text(yaml.safe_dump(cfg))
    if main(["search", str(path)]) != 0:
        raise RuntimeError("the search arm's search failed")
    picked = choose(load_trials(storage / "search"), "eval_accuracy", "max")
    return {k: v for k, v in picked.trial.params.items() if k in SPACE}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    scores = [r["test_accuracy"] for r in runs if r["test_accuracy"] is not None]
    return {"mean": statistics.fmean(scores) if scores else float("nan"),
            "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "failed_rate": sum(r["failed"] for r in runs) / len(runs), "runs": len(runs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="sst2,rotten_tomatoes")
    p.add_argument("--sizes", default="100,300,1000")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--search-trials", type=int, default=12)
    p.add_argument("--search-seeds", type=int, default=5)
    p.add_argument("--search-sizes", default="100,300,1000", help="sizes the search arm runs at ('' for none)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "low_resource.json")
    args = p.parse_args()
    train = recipe_train(args.steps)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="low-resource-") as tmp:
        for dataset in args.datasets.split(","):
            for size in map(int, args.sizes.split(",")):
                folder = subsample(dataset, size, Path(tmp) / "data")
                for arm in args.arms.split(","):
                    print(f"{dataset} {size} rows, {arm}", flush=True)
                    storage = Path(tmp) / f"{dataset}-{size}-{arm}"
                    runs = seed_runs(folder, storage, train, ARMS[arm], args.seeds, arm)
                    results.append({"dataset": dataset, "rows": size, "arm": arm, "params": ARMS[arm],
                                    **summary(runs), "each": runs})
                if str(size) in args.search_sizes.split(",") and args.search_trials:
                    print(f"{dataset} {size} rows, search ({args.search_trials} trials)", flush=True)
                    storage = Path(tmp) / f"{dataset}-{size}-search"
                    storage.mkdir(parents=True)
                    params = search_pick(folder, storage, train, args.search_trials)
                    runs = seed_runs(folder, storage, train, params, args.search_seeds, "search pick")
                    results.append({"dataset": dataset, "rows": size, "arm": "search", "params": params,
                                    **summary(runs), "each": runs})
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                "train": train, "results": results}, indent=2))
    print(f"\n{'dataset':<16}{'rows':>6}  {'arm':<10}{'mean':>8}{'std':>8}{'failed':>8}  runs")
    for r in results:
        print(f"{r['dataset']:<16}{r['rows']:>6}  {r['arm']:<10}{r['mean']:>8.4f}{r['std']:>8.4f}"
              f"{r['failed_rate']:>8.0%}  {r['runs']}" + (f"  {r['params']}" if r["arm"] == "search" else ""))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
