"""Robustness over seeds: how `robust` scores the re-runs of a search's top configs, and where it keeps them.

A config that reaches 0.95 once but diverges on two seeds of five is worse than one that reaches 0.93 every
time (Dodge et al. 2020; Mosbach et al. 2021). The re-runs (raytune_llm.search.robust) are a Ray Tune experiment of
their own under RUN_DIR/robust; this module reads and scores them without Ray. Which config export then takes is
raytune_llm.results.choice.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from raytune_llm.core.outcomes import worst_value
from raytune_llm.results.trials import TrialRecord
from raytune_llm.runs.layout import RunInfo

ROBUST_DIR = "robust"
SUMMARY_FILE = "robust.json"
REQUEST_FILE = "request.json"  # the --top-k/--seeds the runs were started with
SCORES = ("mean-std", "mean", "median", "min")


def seeds_for(base: int, n: int) -> list[int]:
    return [base + 1 + i for i in range(n)]


def run_params(record: TrialRecord) -> dict[str, Any]:
    """The sampled params of a robust run (Tune stores them under the `params` key of its config)."""
    nested = record.params.get("params")
    return dict(nested) if isinstance(nested, dict) else dict(record.params)


def config_of(params: dict[str, Any]) -> dict[str, Any]:
    """A config as `robust` re-runs it: its params without the seed, which the re-runs set (a seed in the space is
    one of the things re-running with other seeds averages over)."""
    return {k: v for k, v in params.items() if k != "seed"}


def robust_score(values: list[float], kind: str, mode: str) -> float:
    sign = 1.0 if mode == "max" else -1.0
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    if kind == "mean-std":
        return mean - sign * spread
    if kind == "mean":
        return mean
    if kind == "median":
        return statistics.median(values)
    return min(values) if mode == "max" else max(values)


def summarise(picks: list[TrialRecord], runs: list[TrialRecord], info: RunInfo, score: str) -> dict[str, Any]:
    """Per config: final metric per seed, mean, std, min, failed-run rate, robust score; best config first."""
    cfg = info.experiment
    metric, mode = cfg.search.metric, cfg.search.mode
    worst = worst_value(metric, mode)
    configs = []
    for pick in picks:
        mine = [r for r in runs if config_of(run_params(r)) == config_of(pick.params)]
        values, failed, seeds = [], 0, []
        for r in mine:
            last = r.last
            unstable = r.failed or not last  # the guard stopped it, it ended at chance level, or it raised
            value = worst if unstable else float(last.get(metric, worst))
            failed += unstable
            values.append(value)
            seeds.append(run_params(r).get("seed"))
        if not values:
            continue
        configs.append({
            "source_trial": pick.trial_id, "params": pick.params, "seeds": seeds, "values": values,
            "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "failed_rate": failed / len(values),
            "robust_score": robust_score(values, score, mode), "runs": [r.trial_id for r in mine],
        })
    configs.sort(key=lambda c: c["robust_score"], reverse=mode == "max")
    return {"metric": metric, "mode": mode, "score": score, "chance_value": info.chance_value,
            "chance_metric": info.chance_metric, "configs": configs}


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """`robust`'s summary of a run, or None when it never finished."""
    path = run_dir / ROBUST_DIR / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """`robust`'s table as printed by `robust` and `status`."""
    metric = summary["metric"]
    chance = summary.get("chance_metric", "eval_accuracy")
    level = summary.get("chance_value", summary.get("majority_baseline", 0.0))  # older summaries: the latter
    at_chance = f" or ended at chance level ({chance} never above {level:.3f} + margin)" if chance else ""
    lines = [f"robustness over seeds ({metric}, score = {summary['score']}; failed = unstable{at_chance}):",
             f"{'rank':<5}{'trial':<10}{'mean':>8}{'std':>8}{'min':>8}{'failed':>8}{'score':>8}  params"]
    for i, c in enumerate(summary["configs"], 1):
        params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in c["params"].items())
        lines.append(f"{i:<5}{c['source_trial']:<10}{c['mean']:>8.4f}{c['std']:>8.4f}{c['min']:>8.4f}"
                     f"{c['failed_rate']:>8.0%}{c['robust_score']:>8.4f}  {params}")
    return lines
