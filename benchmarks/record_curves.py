"""Record learning curves to judge the stability guard on (and to replay searches on).

Runs seeded random configs of a search space to the end with the guard's stopping rules off (only a run whose
loss turns NaN/inf ends early: its weights are NaN from then on, so it can never recover), and keeps every
step's train loss and pre-clipping gradient norm and every evaluation. Each recorded run is then labelled by its
end: `failed` (diverged, or final chance metric at chance level) or `healthy`, and ranked by its final score.
`benchmarks/guard_quality.py` replays the guard's detectors on these recordings.

Tasks (all from ../shared/data, all with all-MiniLM-L6-v2; see TASKS):
- `paraphrase_imbalanced`: STS-B sentence pairs as a binary task, "near-paraphrase" (score >= 3.8) vs not,
  71/29: binary, imbalanced, and slow to leave the majority class at the usual learning rates (built to behave
  like the held-out acceptability task the guard once failed on).
- `sst2`: binary sentiment, balanced, quick to learn.
- `bbc_news`: 5-way topic, long texts.
- `rotten_tomatoes`: binary sentiment again, from another source (movie-review snippets, MR v1.0), short runs.
- `stsb_regression`: STS-B similarity (0-5) as regression (the product's `regression` task), scored by Pearson
  correlation; chance level: Pearson 0 (a model that learnt nothing predicts a constant), short runs.

Every task runs the same configs (`sample_configs(n, seed)` with the same seed, the same divergent ones): the
search benchmark's portfolio arms compare one config across tasks.

Runs go in parallel, one process per core, one torch thread each; runs already recorded are skipped (the command
can be stopped and started again). Re-record everything:

    python benchmarks/record_curves.py --runs 14 [--tasks sst2,bbc_news,paraphrase_imbalanced] [--workers 2]
    python benchmarks/record_curves.py --runs 14 --tasks sst2,bbc_news --divergent   # + 3 runs that blow up
    python benchmarks/record_curves.py --runs 14 --tasks rotten_tomatoes,stsb_regression --divergent --workers 1

Add the test-split score of every evaluation's checkpoint to recorded runs (what a search that picked the run at
that evaluation would ship; benchmarks/search_efficiency.py names the runs it picked that lack one):

    python benchmarks/record_curves.py --test-scores --tasks sst2 --only 0,1,3

Writes benchmarks/recordings/<task>.json (small: traces rounded to 5 significant digits).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "benchmarks" / "recordings"
# The guard off except for NaN/inf (see the module doc).
ONLY_NON_FINITE = {"enabled": True, "loss_spike": {"enabled": False}, "grad_explosion": {"enabled": False},
                   "chance_level": {"enabled": False}, "plateau": {"enabled": False}}
FAILED_MARGIN = 0.05  # a run whose final chance metric is within this of chance learnt (almost) nothing

TASKS: dict[str, dict[str, Any]] = {
    "paraphrase_imbalanced": {
        "source": "glue_stsb", "binarise_at": 3.8, "labels": ["different", "paraphrase"], "text_pair": True,
        "max_length": 48, "train_samples": 1200, "eval_samples": 300,
        "train": {"epochs": 2, "batch_size": 16, "eval_every": 10}, "objective": "eval_macro_f1",
    },
    "sst2": {
        "source": "sst2", "labels": ["negative", "positive"], "max_length": 48, "train_samples": 1600,
        "eval_samples": 400, "train": {"epochs": 1, "batch_size": 16, "eval_every": 10},
        "objective": "eval_accuracy",
    },
    "bbc_news": {
        "source": "bbc_news", "labels": ["business", "entertainment", "politics", "sport", "tech"],
        "max_length": 64, "train_samples": 800, "eval_samples": None,
        "train": {"epochs": 1, "batch_size": 16, "eval_every": 5}, "objective": "eval_accuracy",
    },
    "rotten_tomatoes": {
        "source": "rotten_tomatoes", "labels": ["negative", "positive"], "max_length": 48, "train_samples": 640,
        "eval_samples": 200, "test_samples": 500, "train": {"epochs": 1, "batch_size": 16, "eval_every": 5},
        "objective": "eval_accuracy",
    },
    "stsb_regression": {
        "source": "glue_stsb", "task": "regression", "labels": None, "text_pair": True, "max_length": 48,
        "train_samples": 640, "eval_samples": 200, "test_samples": 500,
        "train": {"epochs": 1, "batch_size": 16, "eval_every": 5}, "objective": "eval_pearson",
    },
}


def sample_configs(n: int, seed: int) -> list[dict[str, Any]]:
    """A space with healthy, slow and diverging regions: LoRA gets a 10x higher lr range than full fine-tuning
    (what each needs on this model), high ends included on purpose."""
    rng = random.Random(seed)
    configs = []
    for i in range(n):
        method = "full" if rng.random() < 0.6 else "lora"
        low, high = (3e-6, 3e-3) if method == "full" else (3e-5, 3e-2)
        configs.append({
            "peft.method": method, "optimizer.lr": float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.3g}"),
            "schedule.warmup_ratio": rng.choice([0.0, 0.1]), "grad_clip": rng.choice([None, 1.0]), "seed": i,
        })
    return configs


def divergent_configs() -> list[dict[str, Any]]:
    """Full fine-tuning at learning rates far past the useful range, without clipping or warmup: the runs that
    blow up, so that the step detectors (loss_spike, grad_explosion, non_finite) have something to catch."""
    return [{"peft.method": "full", "optimizer.lr": lr, "schedule.warmup_ratio": 0.0, "grad_clip": None,
             "seed": 1000 + i} for i, lr in enumerate((1e-2, 3e-2, 1e-1))]


def prepare_task(name: str, work: Path) -> tuple[Any, dict[str, Any]]:
    """Tokenise the task's data once; returns the run info and the task's recording metadata."""
    import pandas as pd
    from datasets import load_from_disk

    from raytune_llm.runs.tokenise import tokenise
    from raytune_llm.schema import DataConfig, ModelConfig
    from raytune_llm.sources.builtins import minilm

    t = TASKS[name]
    task_type = t.get("task", "sequence_classification")
    source = DATA / t["source"]
    if "binarise_at" in t:  # a derived binary task, written next to the work folder
        derived = work / f"{name}-data"
        derived.mkdir(parents=True, exist_ok=True)
        for split in ("train", "validation", "test"):
            df = pd.read_parquet(source / f"{split}.parquet")[["text", "text_pair", "label"]]
            df["label"] = (df["label"] >= t["binarise_at"]).astype(int)
            df.to_parquet(derived / f"{split}.parquet")
        source = derived
    model = str(minilm())
    data_cfg = DataConfig(source=str(source), labels=t["labels"], text_pair_column="text_pair" if t.get("text_pair")
                          else None, max_train_samples=t["train_samples"], max_eval_samples=t["eval_samples"])
    prepared = tokenise(data_cfg, ModelConfig(name=model, max_length=t["max_length"]), model, work / name, seed=0,
                        task_name=task_type)
    eval_labels = load_from_disk(str(prepared.path))["eval"]["labels"]
    # The old chance rule's baseline, for comparison (classification only: a regression has no majority class).
    majority = max(Counter(eval_labels).values()) / len(eval_labels) if task_type != "regression" else None
    meta = {"task": name, "task_type": task_type, "objective": t["objective"], "train": t["train"],
            "sizes": {**prepared.sizes, **({"test": min(t["test_samples"], prepared.sizes["test"])}
                                           if t.get("test_samples") else {})},
            "majority_rate": majority,
            "label_names": prepared.label_names, "chance_metric": prepared.chance_metric,
            "chance_value": prepared.chance_value, "chance_loss": prepared.chance_loss,
            "data_path": str(prepared.path), "model_path": model}
    return prepared, meta


def run_spec(meta: dict[str, Any], config: dict[str, Any]) -> tuple[Any, Any]:
    """The seeded run of `config`, as recorded: (RunSpec, TrainConfig)."""
    from raytune_llm.schema import TrainConfig
    from raytune_llm.schema.space import apply_params
    from raytune_llm.training.spec import RunSpec

    params = {k: v for k, v in config.items() if k != "seed"}
    train = apply_params(TrainConfig.model_validate({**meta["train"], "seed": config["seed"]}), params)
    spec = RunSpec(model_path=meta["model_path"], tokenizer_path=meta["model_path"], data_path=meta["data_path"],
                   label_names=meta["label_names"], train=train.model_dump(mode="json"), metric=meta["objective"],
                   stability=ONLY_NON_FINITE, chance_metric=meta["chance_metric"], chance_value=meta["chance_value"],
                   chance_loss=meta["chance_loss"], torch_threads=1,
                   task=meta.get("task_type", "sequence_classification"))
    return spec, train


def record_one(meta: dict[str, Any], config: dict[str, Any], verbose: bool = False) -> dict[str, Any]:
    """One run to the end (or to its first NaN); every evaluation and every step's loss and gradient norm."""
    import torch

    from raytune_llm.training.bare import BareSession
    from raytune_llm.training.loop import run

    torch.set_num_threads(1)
    spec, _ = run_spec(meta, config)
    session = BareSession(None, device="cpu")
    if verbose:
        session.report = lambda m, c, r=session.reports: (r.append(m), print(  # type: ignore[method-assign]
            {k: round(v, 4) for k, v in m.items() if k in ("step", "eval_mcc", "eval_loss", "train_loss")}))
    start = time.time()
    run(spec, session)
    losses = [v for r in session.reports for v in r.get("step_losses", [])]
    norms = [v for r in session.reports for v in r.get("step_grad_norms", [])]
    evals = [{k: v for k, v in r.items() if k.startswith("eval_") or k in ("step", "train_loss", "lr")}
             for r in session.reports if "eval_loss" in r]
    last = session.reports[-1]
    return {"config": config, "evals": evals, "step_loss": losses, "step_grad_norm": norms,
            "total_steps": last["total_steps"], "diverged": last.get("stop_reason") == "non_finite",
            "wall_s": round(time.time() - start, 1)}


def score_test(meta: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Runs a recorded config again (seeded: the same run) and scores the checkpoint of every evaluation on the
    test split, as export scores the checkpoint it ships: what a search that picked this run at that evaluation
    would deliver on held-out data. Returns the test scores and the eval scores of this run, to check it is
    the recorded one."""
    import datasets
    import torch
    from transformers import AutoTokenizer

    from raytune_llm.models.build import load_trained
    from raytune_llm.schema import GenerationConfig
    from raytune_llm.tasks import get_task
    from raytune_llm.training.bare import BareSession
    from raytune_llm.training.evaluation import EvalContext, evaluate
    from raytune_llm.training.loop import run
    from raytune_llm.training.precision import autocast_for

    torch.set_num_threads(1)
    spec, train = run_spec(meta, config)
    test = datasets.load_from_disk(meta["data_path"])["test"]
    if meta["sizes"]["test"] < len(test):  # the task's test_samples: a seeded sample of the test split
        test = test.shuffle(seed=0).select(range(meta["sizes"]["test"]))
    tokenizer = AutoTokenizer.from_pretrained(meta["model_path"])
    task_type = meta.get("task_type", "sequence_classification")
    task = get_task(task_type)
    ctx = EvalContext(task, meta["label_names"], tokenizer, task.collator(tokenizer), GenerationConfig())
    session = BareSession(None, device="cpu")
    evals, tests, keep = [], [], session.report

    def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        keep(metrics, None)
        if checkpoint_dir is None or "eval_loss" not in metrics:
            return
        # Building the model draws from torch's RNG (a new head's init): the run's own draws must not move.
        with torch.random.fork_rng(devices=[]):
            model = load_trained(meta["model_path"], checkpoint_dir / "model", train.peft.method, meta["label_names"],
                                 task=task_type, pad_token_id=tokenizer.pad_token_id)
            scores, _ = evaluate(model, test, ctx, train, session, autocast_for(train.precision, session.device))
        evals.append(metrics[meta["objective"]])
        tests.append(scores[meta["objective"]])

    session.report = report  # type: ignore[method-assign]
    run(spec, session)
    return {"evals": evals, "tests": tests}


def add_test_scores(run: dict[str, Any], result: dict[str, Any], metric: str) -> None:
    """The test scores, one per recorded evaluation, once the re-run is known to be the recorded run (CPU, one
    thread, seeded: the same eval scores)."""
    recorded = [e[metric] for e in run["evals"]]
    if len(result["evals"]) != len(recorded):
        raise RuntimeError(f"run {run['config']} re-ran with {len(result['evals'])} evaluations, "
                           f"recorded {len(recorded)}: not the recorded run")
    diff = max(abs(a - b) for a, b in zip(recorded, result["evals"]))
    if diff > 1e-6:
        raise RuntimeError(f"run {run['config']} re-ran with eval scores up to {diff:.4f} off the recording: "
                           "not the recorded run (the training code changed since it was recorded?)")
    run["test_scores"] = [float(f"{t:.5g}") for t in result["tests"]]


def key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def label_runs(meta: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    """failed/healthy by each run's end; rank by final objective (1 = best; failed runs rank after all healthy)."""
    metric, chance = meta["objective"], meta["chance_metric"]
    for r in runs:
        final = r["evals"][-1] if r["evals"] and not r["diverged"] else {}
        r["final"] = final.get(metric)
        at_chance = not final or final.get(chance, 0.0) <= meta["chance_value"] + FAILED_MARGIN
        r["end"] = "failed" if r["diverged"] or at_chance else "healthy"
    order = sorted(runs, key=lambda r: (r["end"] == "failed", -(r["final"] if r["final"] is not None else -1e9)))
    for rank, r in enumerate(order, 1):
        r["rank"] = rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=16, help="configs per task")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the config sample")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--divergent", action="store_true", help="also record 3 runs at learning rates that blow up")
    parser.add_argument("--test-scores", action="store_true",
                        help="instead of recording: add each recorded run's test score at every evaluation")
    parser.add_argument("--only", default="", help="with --test-scores: these config seeds (comma-separated)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rtl-record-"))
    jobs, metas, recorded = [], {}, {}
    for name in args.tasks.split(","):
        _, meta = prepare_task(name, work)
        metas[name] = meta
        path = args.out / f"{name}.json"
        old = json.loads(path.read_text())["runs"] if path.is_file() else []
        recorded[name] = {key(r["config"]): r for r in old}
        if args.test_scores:
            only = {int(x) for x in args.only.split(",") if x}
            jobs += [(name, r["config"]) for r in old
                     if "test_scores" not in r and (not only or r["config"]["seed"] in only)]
            continue
        configs = sample_configs(args.runs, args.seed) + (divergent_configs() if args.divergent else [])
        jobs += [(name, c) for c in configs if key(c) not in recorded[name]]
    print(f"{len(jobs)} runs to record ({sum(map(len, recorded.values()))} already recorded)", flush=True)

    def save(name: str) -> None:
        meta = {k: v for k, v in metas[name].items() if k not in ("data_path", "model_path")}
        runs = sorted(recorded[name].values(), key=lambda r: r["config"]["seed"])
        label_runs(meta, runs)
        if not args.test_scores:
            meta["command"] = (f"python benchmarks/record_curves.py --runs {args.runs} --tasks {name}"
                               + (" --divergent" if any(r["config"]["seed"] >= 1000 for r in runs) else ""))
        else:
            meta["command"] = json.loads((args.out / f"{name}.json").read_text())["meta"]["command"]
        (args.out / f"{name}.json").write_text(json.dumps({"meta": meta, "runs": runs}, separators=(",", ":")))

    with ProcessPoolExecutor(args.workers) as pool:
        work = score_test if args.test_scores else record_one
        futures = {pool.submit(work, metas[n], c): (n, c) for n, c in jobs}
        for done, future in enumerate(as_completed(futures), 1):
            name, config = futures[future]
            result = future.result()
            if args.test_scores:
                add_test_scores(recorded[name][key(config)], result, metas[name]["objective"])
                save(name)
                print(f"[{done}/{len(jobs)}] {name} {config}: test {result['tests'][-1:]} ", flush=True)
                continue
            recorded[name][key(config)] = result
            save(name)
            final = result["evals"][-1] if result["evals"] else {}
            print(f"[{done}/{len(jobs)}] {name} {config} -> {metas[name]['objective']}="
                  f"{final.get(metas[name]['objective'], float('nan')):.4f} "
                  f"{'DIVERGED ' if result['diverged'] else ''}({result['wall_s']:.0f} s)", flush=True)
    for name in recorded:
        save(name)


if __name__ == "__main__":
    main()
