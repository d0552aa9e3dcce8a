"""Robustness check: re-run the top-K configs of a search with N seeds and score them by their spread.

A config that reaches 0.95 once but diverges on two seeds of five is worse than one that reaches 0.93 every
time (Dodge et al. 2020; Mosbach et al. 2021). The re-runs are a Ray Tune experiment of their own under
RUN_DIR/robust (parallel, and resumable: running the command again continues it).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from raytune_llm.core.errors import UserError
from raytune_llm.core.outcomes import real_value
from raytune_llm.core.storage import is_uri, join, put_file
from raytune_llm.results.trials import TrialRecord, choose, load_trials, outcome_counts
from raytune_llm.runs.layout import RunInfo, open_run, read_info
from raytune_llm.tasks.metrics import worst_value

ROBUST_DIR = "robust"
SUMMARY_FILE = "robust.json"
REQUEST_FILE = "request.json"  # the --top-k/--seeds the runs were started with
SCORES = ("mean-std", "mean", "median", "min")


def top_configs(trials: list[TrialRecord], metric: str, mode: str, k: int) -> list[TrialRecord]:
    """The K trials with the best finite reports (failed trials excluded), best first; when no healthy trial
    exists, the K guard-stopped trials with the best real reports (whether they were stopped wrongly is exactly
    what re-running them with other seeds tells)."""
    ranked = [(t, r[metric]) for t in trials if (r := t.best_row(metric, mode))]
    if not ranked:
        ranked = [(t, real_value(r, metric)) for t in trials if (r := t.fallback_row(metric, mode))]
    ranked.sort(key=lambda tr: tr[1], reverse=mode == "max")
    return [t for t, _ in ranked[:k]]


def seeds_for(base: int, n: int) -> list[int]:
    return [base + 1 + i for i in range(n)]


def run_params(record: TrialRecord) -> dict[str, Any]:
    """The sampled params of a robust run (Tune stores them under the `params` key of its config)."""
    nested = record.params.get("params")
    return dict(nested) if isinstance(nested, dict) else dict(record.params)


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
        mine = [r for r in runs if {k: v for k, v in run_params(r).items() if k != "seed"} == pick.params]
        values, failed, seeds = [], 0, []
        for r in mine:
            last = r.last
            unstable = r.failed or not last
            value = worst if unstable else float(last.get(metric, worst))
            chance = info.chance_metric
            failed += unstable or bool(chance and last.get(chance, 0.0) <= info.chance_value)
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


def run_robust(run_dir: Path, top_k: int, seeds: int, score: str, address: str | None) -> dict[str, Any]:
    from ray import tune

    from raytune_llm.actors.placement import ReleasePlacements, start_ledger
    from raytune_llm.actors.population import EndBoard, start_board
    from raytune_llm.executors import make_trial, tune_checkpoints, tune_failure_retries
    from raytune_llm.search.driver import concurrency, connect, train_template
    from raytune_llm.search.progress import ProgressTable

    if score not in SCORES:
        raise UserError(f"--score {score!r}: choose from {list(SCORES)}")
    info = read_info(run_dir)
    cfg = info.experiment
    metric, mode = cfg.search.metric, cfg.search.mode
    trials = load_trials(run_dir)
    picks = top_configs(trials, metric, mode, top_k)
    if not picks:
        raise UserError(f"no trial of {run_dir} reported a finite {metric!r} (outcomes: {outcome_counts(trials)}); "
                        "nothing to re-run")
    if all(p.failed for p in picks):
        print(f"no healthy trial in {run_dir}: re-running the {len(picks)} best trials the stability guard stopped "
              f"({', '.join(sorted({p.stop_reason for p in picks}))}), by their real {metric}")
    total = connect(cfg, address)
    robust_dir, robust_root = run_dir / ROBUST_DIR, join(info.run_root, ROBUST_DIR)
    template = train_template(cfg, info)
    board = template.population_board = start_board(robust_root)  # the seeds of the top configs: the population
    ledger = "" if cfg.resources.in_process else start_ledger(robust_root)
    trial, resources = make_trial(template, cfg, join(robust_root, "train"), ledger)

    def robust_run(config: dict[str, Any]) -> None:
        trial(config["params"])

    trainable = tune.with_resources(robust_run, resources)
    request = {"top_k": top_k, "seeds": seeds, "configs": [p.trial_id for p in picks]}
    if list(robust_dir.glob("experiment_state-*.json")):
        before = json.loads((robust_dir / REQUEST_FILE).read_text()) if (robust_dir / REQUEST_FILE).is_file() else {}
        if before and (before["top_k"], before["seeds"]) != (top_k, seeds):
            print(f"the robustness runs in {robust_dir} were started with --top-k {before['top_k']} --seeds "
                  f"{before['seeds']}: continuing those; --top-k {top_k} --seeds {seeds} are not applied (the "
                  f"summary is recomputed with --score {score}). To re-run with other values, delete {robust_dir}")
            picks = [t for t in trials if t.trial_id in before["configs"]] or picks
        else:
            print(f"resuming the robustness runs in {robust_dir}")
        tuner = tune.Tuner.restore(robust_root, trainable, resume_unfinished=True, resume_errored=True)
    else:
        robust_dir.mkdir(parents=True, exist_ok=True)
        (robust_dir / REQUEST_FILE).write_text(json.dumps(request))
        if is_uri(robust_root):
            put_file(robust_dir / REQUEST_FILE, join(robust_root, REQUEST_FILE))
        grid = [{**t.params, "seed": s} for t in picks for s in seeds_for(cfg.train.seed, seeds)]
        tuner = tune.Tuner(
            trainable,
            param_space={"params": tune.grid_search(grid)},
            tune_config=tune.TuneConfig(metric=metric, mode=mode, max_concurrent_trials=concurrency(cfg, total),
                                        reuse_actors=cfg.resources.in_process),
            run_config=tune.RunConfig(name=ROBUST_DIR, storage_path=info.run_root, verbose=0,
                                      callbacks=[ProgressTable(metric, mode, len(grid)), EndBoard(board),
                                                 *([ReleasePlacements(ledger)] if ledger else [])],
                                      checkpoint_config=tune_checkpoints(cfg),
                                      failure_config=tune.FailureConfig(max_failures=tune_failure_retries(cfg))),
        )
    tuner.fit()
    robust_dir = open_run(robust_root)  # on a URI: a fresh mirror with the runs' results
    summary = summarise(picks, load_trials(robust_dir), info, score)
    (robust_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    if is_uri(robust_root):
        put_file(robust_dir / SUMMARY_FILE, join(robust_root, SUMMARY_FILE))
    return summary


def robust_choice(run_dir: Path) -> tuple[list[TrialRecord], TrialRecord, dict[str, Any]]:
    """For `export --by robust`: the robust winner's best seed run and its best report."""
    summary_file = run_dir / ROBUST_DIR / SUMMARY_FILE
    if not summary_file.is_file():
        if list((run_dir / ROBUST_DIR).glob("experiment_state-*.json")):
            raise UserError(f"the robustness runs in {run_dir / ROBUST_DIR} did not finish (no {SUMMARY_FILE}); run "
                            f"`raytune-llm robust {run_dir}` again to continue them")
        raise UserError(f"no robustness results in {run_dir}; run `raytune-llm robust {run_dir}` first")
    summary = json.loads(summary_file.read_text())
    if not summary["configs"]:
        raise UserError(f"{summary_file} lists no configs; re-run `raytune-llm robust {run_dir}`")
    winner = summary["configs"][0]
    runs = [t for t in load_trials(run_dir / ROBUST_DIR) if t.trial_id in winner["runs"]]
    choice = choose(runs, summary["metric"], summary["mode"])
    return runs, choice.trial, choice.row
