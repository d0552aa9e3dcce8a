"""Where a trial's training runs (`resources.executor`).

- `inprocess`: inside the Tune trial's own process, which Tune reuses for the next trial (imports, tokenizer,
  data and pretrained weights stay loaded): one worker, start-up in about a second once warm.
- `train`: a Ray Train DDP job per trial (a driver, a controller and `num_workers` worker processes), for
  multi-worker trials.

This module decides and imports nothing heavy; the executor modules import Ray.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from raytune_llm.schema.experiment import ExperimentConfig
from raytune_llm.training.loop import RunSpec

# How long one attempt to place a trial's workers waits before Train asks again (a fresh placement group). Trials
# that could never be placed are refused up front; the rest wait for a running trial to end, and ended trials
# give their resources back at once (raytune_llm.actors.placement), so a wait is short unless another job holds them.
START_ATTEMPT_S = 30

# Seen by every Ray worker process (set through the runtime env at ray.init).
WORKER_ENV = {
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",  # cuts worker-group start-up by seconds per trial
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": str(START_ATTEMPT_S),
    # One process fewer per Train trial. Preemption notices come from cloud spot nodes: a search on them sets
    # RAY_TRAIN_ENABLE_PREEMPTION_WATCHER=1 in its own environment.
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": os.environ.get("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0"),
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def make_trial(template: RunSpec, cfg: ExperimentConfig, train_storage: str,
               placement_ledger: str = "") -> tuple[Callable[[dict[str, Any]], None], dict[str, float]]:
    """The function a Tune trial runs (sampled params in) and the resources the trial asks Tune for."""
    res = cfg.resources
    if res.in_process:
        from raytune_llm.executors.inprocess import make_inprocess_trial

        fn = make_inprocess_trial(template, cfg.train)
        return fn, {"cpu": res.cpus_per_worker, "gpu": res.gpus_per_worker}
    from raytune_llm.executors.train import make_driver

    return make_driver(template, cfg.train, res, train_storage, cfg.run, placement_ledger), {"cpu": res.driver_cpus}


def tune_failure_retries(cfg: ExperimentConfig) -> int:
    """Tune's `max_failures`: an in-process trial is retried by Tune from its last checkpoint (what Train's worker
    restarts do for a DDP trial); a Train trial's retries happen inside Train."""
    return cfg.run.worker_retries if cfg.resources.in_process else 0


def tune_checkpoints(cfg: ExperimentConfig) -> Any:
    """What Tune keeps of an in-process trial's checkpoints: the `keep_checkpoints` best and, always, the latest
    (what Train keeps of a Train trial's). Train trials report no checkpoint to Tune."""
    from ray import tune

    keep = cfg.run.keep_checkpoints
    if not cfg.search.scheduler.uses_searcher:  # PBT: a trial copies another's latest checkpoint a little later
        keep = max(keep, 3)
    return tune.CheckpointConfig(num_to_keep=keep, checkpoint_score_attribute=cfg.search.metric,
                                 checkpoint_score_order=cfg.search.mode)
