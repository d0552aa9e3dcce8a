"""`robust`: re-run the top-K configs of a search with N seeds, as a Ray Tune experiment of its own under
RUN_DIR/robust (parallel, and resumable: running the command again continues it). How the re-runs are scored, and
which config export then takes, is raytune_llm.results (robustness, choice).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raytune_llm.core.errors import UserError
from raytune_llm.core.storage import is_uri, join, put_file
from raytune_llm.results.choice import top_configs
from raytune_llm.results.robustness import (
    REQUEST_FILE,
    ROBUST_DIR,
    SCORES,
    SUMMARY_FILE,
    config_of,
    seeds_for,
    summarise,
)
from raytune_llm.results.trials import load_trials, outcome_counts
from raytune_llm.runs.layout import open_run, read_info


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
    # One re-run per config: trials that differ only in a searched seed are one config to re-run with new seeds.
    picks, seen = [], set()
    for trial in top_configs(trials, metric, mode, len(trials)):
        if (key := json.dumps(config_of(trial.params), sort_keys=True, default=str)) not in seen:
            seen.add(key)
            picks.append(trial)
    picks = picks[:top_k]
    if not picks:
        raise UserError(f"no trial of {run_dir} reported a finite {metric!r} (outcomes: {outcome_counts(trials)}); "
                        "nothing to re-run")
    if all(p.failed for p in picks):
        print(f"no healthy trial in {run_dir}: re-running the {len(picks)} best failed trials "
              f"({', '.join(sorted({p.failure for p in picks}))}), by their real {metric}")
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
        grid = [{**config_of(t.params), "seed": s} for t in picks for s in seeds_for(cfg.train.seed, seeds)]
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
