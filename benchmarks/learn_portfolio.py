"""Learn the portfolio a search starts from (`search.start: portfolio`) from the recorded runs, and print it as
entries for raytune_llm/recipes/portfolio.yaml (printed only: copying it there is a reviewed change).

The candidates are the recorded configs (benchmarks/recordings/*.json, made by benchmarks/record_curves.py: every
task runs the same configs), each as (PEFT method, learning rate, warmup, gradient clipping). A candidate's score
on a task is normalised from the task's chance level to its best recorded run: (the run's best eval score -
chance) / (the task's best - chance), clipped to [0, 1]; a run that ended failed scores 0. The chance level of
the objective: the chance metric's value where the objective is the chance metric (eval_pearson: 0), the
majority-class rate for accuracy, p / (1 + p) for macro F1 (the majority class predicted everywhere). The greedy
rule (raytune_llm.recipes.greedy_portfolio) then picks, one after another, the candidate that most raises the sum
over tasks of the best score so far.

benchmarks/search_efficiency.py learns the same way on all tasks but the one it searches (leave one task out).

    python benchmarks/learn_portfolio.py [--k 3] [--tasks sst2,bbc_news,...] [--recordings DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from raytune_llm.recipes import Recipe, greedy_portfolio  # noqa: E402

RECORDINGS = REPO / "benchmarks" / "recordings"
SOURCE = "greedy portfolio over benchmarks/recordings (MiniLM, 1-2 epochs)"
PARAMS = ("optimizer.lr", "schedule.warmup_ratio", "grad_clip")


def load(recordings: Path = RECORDINGS, tasks: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The recordings by task name ({"meta", "runs"})."""
    files = sorted(recordings.glob("*.json")) if tasks is None else [recordings / f"{t}.json" for t in tasks]
    recs = {}
    for f in files:
        rec = json.loads(f.read_text())
        recs[rec["meta"]["task"]] = rec
    return recs


def chance_of(meta: dict[str, Any]) -> float:
    """The objective's value at chance level (see the module doc)."""
    objective = meta["objective"]
    if objective == meta["chance_metric"]:
        return float(meta["chance_value"])
    if objective == "eval_accuracy":
        return float(meta["majority_rate"])
    if objective == "eval_macro_f1":
        p = float(meta["majority_rate"])
        return p / (1 + p)
    raise ValueError(f"{meta['task']}: no chance level known for {objective}")


def best_eval(run: dict[str, Any], metric: str) -> float:
    return max((e[metric] for e in run["evals"]), default=float("-inf"))


def lr_name(lr: float) -> str:
    mantissa, exponent = f"{lr:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def candidate_key(config: dict[str, Any]) -> str:
    """A recorded config's name as a recipe: method and learning rate, then warmup and clipping."""
    clip = config.get("grad_clip")
    return (f"{config['peft.method']}-lr{lr_name(config['optimizer.lr'])}-w{config.get('schedule.warmup_ratio', 0.0):g}"
            f"-clip{'none' if clip is None else f'{clip:g}'}")


def candidates(recs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every recorded config (the seed left out) by its key."""
    out: dict[str, dict[str, Any]] = {}
    for rec in recs.values():
        for run in rec["runs"]:
            config = {k: v for k, v in run["config"].items() if k != "seed"}
            out.setdefault(candidate_key(config), config)
    return out


def normalised_scores(recs: dict[str, dict[str, Any]], tasks: list[str]) -> dict[str, dict[str, float]]:
    """scores[candidate][task] in [0, 1] (see the module doc); a candidate a task did not record is left out."""
    scores: dict[str, dict[str, float]] = {key: {} for key in candidates(recs)}
    for task in tasks:
        meta, runs = recs[task]["meta"], recs[task]["runs"]
        metric, chance = meta["objective"], chance_of(meta)
        top = max(best_eval(r, metric) for r in runs if r["end"] == "healthy")
        for run in runs:
            key = candidate_key({k: v for k, v in run["config"].items() if k != "seed"})
            value = 0.0 if run["end"] == "failed" else (best_eval(run, metric) - chance) / (top - chance)
            scores[key][task] = min(1.0, max(0.0, value))
    return scores


def learn(recs: dict[str, dict[str, Any]], tasks: list[str], k: int, fill: bool = False) -> list[Recipe]:
    """The greedy portfolio of k recipes learnt on `tasks`' recordings. The greedy rule stops early once every
    task has its best recorded run in the portfolio (nothing adds anything); `fill` then tops it up to k with the
    candidates of the highest mean normalised score (a benchmark variant, not what the product ships)."""
    pool = candidates(recs)
    scores = normalised_scores(recs, tasks)
    keys = greedy_portfolio(scores, k)
    if fill:
        rest = sorted((c for c in scores if c not in keys), key=lambda c: -sum(scores[c].get(t, 0.0) for t in tasks))
        keys += rest[:k - len(keys)]
    return [Recipe(name=key, method=pool[key]["peft.method"], params={p: pool[key].get(p) for p in PARAMS},
                   source=SOURCE, learnt_on=list(tasks)) for key in keys]


def as_yaml(recipe: Recipe) -> str:
    def value(v: Any) -> str:  # small floats as 1.03e-4 (with a dot: YAML 1.1 reads 1e-4 as a string)
        if isinstance(v, float) and 0 < v < 1e-2:
            mantissa, exponent = f"{v:.2e}".split("e")
            mantissa = mantissa.rstrip("0")
            return f"{mantissa}{'0' if mantissa.endswith('.') else ''}e{int(exponent)}"
        return "null" if v is None else f"{v}"

    params = ", ".join(f"{k}: {value(v)}" for k, v in recipe.params.items())
    return (f"  - name: {recipe.name}\n    method: {recipe.method.value}\n    params: {{{params}}}\n"
            f"    learnt_on: [{', '.join(recipe.learnt_on)}]\n    source: {recipe.source}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=3, help="recipes to learn (search.portfolio_size)")
    parser.add_argument("--tasks", default="", help="comma-separated (default: every recording)")
    parser.add_argument("--recordings", type=Path, default=RECORDINGS)
    args = parser.parse_args()
    recs = load(args.recordings, args.tasks.split(",") if args.tasks else None)
    tasks = list(recs)
    scores = normalised_scores(recs, tasks)
    portfolio = learn(recs, tasks, args.k)
    print("# normalised scores (0 = chance or failed, 1 = the task's best recorded run); * = learnt\n#")
    print(f"# {'candidate':34} " + " ".join(f"{t[:10]:>10}" for t in tasks) + f" {'sum':>6}")
    chosen = [r.name for r in portfolio]
    for key, by_task in sorted(scores.items(), key=lambda kv: -sum(kv[1].values())):
        mark = "*" if key in chosen else " "
        print(f"# {mark}{key:33} " + " ".join(f"{by_task.get(t, 0.0):10.2f}" for t in tasks)
              + f" {sum(by_task.values()):6.2f}")
    best = dict.fromkeys(tasks, 0.0)
    print("#\n# greedy order (each one's best-so-far per task):")
    for r in portfolio:
        best = {t: max(best[t], scores[r.name].get(t, 0.0)) for t in tasks}
        print(f"#   {r.name:33} " + " ".join(f"{best[t]:10.2f}" for t in tasks) + f" {sum(best.values()):6.2f}")
    print("encoder:")
    for r in portfolio:
        print(as_yaml(r))


if __name__ == "__main__":
    main()
