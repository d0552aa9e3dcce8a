"""Run a search: connect to Ray and drive Tune (searcher, scheduler, executor) over a prepared run."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from raytune_llm.core import storage
from raytune_llm.core.errors import UserError
from raytune_llm.recipes import Family, family_of
from raytune_llm.runs.layout import RunInfo
from raytune_llm.schema import ExperimentConfig, FloatParam, IntParam, ResourcesConfig, TrainConfig
from raytune_llm.schema.space import apply_params
from raytune_llm.training.spec import RunSpec, run_steps

_ROUND_KEYS = ("epochs", "max_steps", "batch_size", "eval_every")


def eval_rounds(train: TrainConfig, train_size: int) -> int:
    """How many evaluations (Tune iterations) one training run makes."""
    return math.ceil(run_steps(train, train_size) / train.eval_every)


def max_eval_rounds(cfg: ExperimentConfig, train_size: int) -> int:
    """The most rounds any sampled config can run (ASHA's default max_t)."""
    bounds = {k: p for k, p in cfg.search.space.items() if k in _ROUND_KEYS}
    candidates = [{}]
    for key, p in bounds.items():
        values = [p.low, p.high] if isinstance(p, (FloatParam, IntParam)) else p.choices
        candidates = [{**c, key: v} for c in candidates for v in values]
    return max(eval_rounds(apply_params(cfg.train, c), train_size) for c in candidates)


def local_cpus(res: ResourcesConfig) -> int:
    """The CPUs a locally started Ray is given. A Train trial's Tune driver only waits for its workers, yet holds
    `driver_cpus`: the drivers' shares are counted on top of the cores, so that as many 1-CPU workers run as
    there are cores (a 2-core laptop runs two trials side by side, not one beside an idle core). One whole trial
    always fits."""
    cores = os.cpu_count() or 1
    drivers = 0 if res.in_process else math.ceil(cores * res.driver_cpus)
    return max(cores + drivers, math.ceil(res.trial_cpus))


def connect(cfg: ExperimentConfig, address: str | None) -> dict[str, float]:
    """Start or join Ray; returns the cluster's resources. Refuses trials that could never be placed."""
    import ray

    from raytune_llm.executors.env import WORKER_ENV

    # Save the search state every second (Tune's default: every 10 s or more), so that a driver killed right
    # after a trial ends does not lose that trial's completion and re-run it on resume.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # ... which Tune then calls excessive in a warning per trial whenever in-process trials checkpoint often.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's own console output prints a config box and a TensorBoard command for a temporary folder even when
    # silenced (verbose=0); the search prints its own table and where to look instead.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("ray.tune.tune").setLevel(logging.WARNING)  # "Wrote the latest version of all result files"
    res = cfg.resources
    trial_cpus = res.trial_cpus
    if not ray.is_initialized():
        runtime_env: dict[str, Any] = {"env_vars": WORKER_ENV}
        if address:
            import raytune_llm

            # Ship this package's code to every node (its dependencies must be installed there).
            runtime_env["py_modules"] = [raytune_llm]
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        else:
            ray.init(num_cpus=local_cpus(res), include_dashboard=True, dashboard_host="127.0.0.1",
                     runtime_env=runtime_env, log_to_driver=False)
    total = ray.cluster_resources()
    if trial_cpus > total.get("CPU", 0):
        raise UserError(f"resources: one trial needs {trial_cpus:g} CPUs, the cluster has {total.get('CPU', 0):g}; "
                        "lower resources.num_workers or resources.cpus_per_worker")
    gpus = res.trial_gpus
    if gpus > total.get("GPU", 0):
        raise UserError(f"resources: one trial needs {gpus:g} GPUs, the cluster has {total.get('GPU', 0):g}; "
                        "set resources.gpus_per_worker: 0 or use a GPU cluster")
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for kind, need in (("CPU", res.cpus_per_worker), ("GPU", res.gpus_per_worker)):
        largest = max((n.get(kind, 0) for n in nodes), default=0)
        if need > largest:
            raise UserError(f"resources: one worker needs {need:g} {kind}s, the largest node has {largest:g}; "
                            f"lower resources.{kind.lower()}s_per_worker")
    return total


def concurrency(cfg: ExperimentConfig, total: dict[str, float]) -> int:
    return concurrency_and_limit(cfg, total)[0]


def concurrency_and_limit(cfg: ExperimentConfig, total: dict[str, float]) -> tuple[int, str]:
    """How many trials run at once, and what limits it (said to the user: an idle machine should not be silent)."""
    res = cfg.resources
    trial_cpus = res.trial_cpus
    # Train V2 starts all of a trial's workers at once; more drivers than fit would only wait.
    fits = int(total.get("CPU", 0) // trial_cpus)
    limit = f"CPUs: each trial takes {trial_cpus:g} of the cluster's {total.get('CPU', 0):g}"
    if res.gpus_per_worker:
        gpu_fits = int(total.get("GPU", 0) // res.trial_gpus)
        if gpu_fits < fits:
            fits = gpu_fits
            limit = f"GPUs: each trial takes {res.trial_gpus:g} of {total.get('GPU', 0):g}"
    if cfg.search.max_concurrent_trials:
        return cfg.search.max_concurrent_trials, "search.max_concurrent_trials"
    if fits >= cfg.search.num_trials:
        return max(1, fits), "the number of trials"
    return max(1, fits), limit


def model_family(cfg: ExperimentConfig, info: RunInfo) -> Family:
    """Which recipes a run's model takes (raytune_llm/recipes): by its config's model_type where the prepared model
    folder is local, else by the task."""
    import json

    config = Path(info.model_path) / "config.json"
    found: dict[str, Any] = {}
    if not storage.is_uri(info.model_path) and config.is_file():
        found = json.loads(config.read_text())
    return family_of(cfg.task.value, found.get("model_type"), found.get("architectures") or ())


def train_template(cfg: ExperimentConfig, info: RunInfo) -> RunSpec:
    """What every trial of this run shares; the driver fills in the sampled training settings."""
    return RunSpec(model_path=info.model_path, tokenizer_path=info.tokenizer_path, data_path=info.data_path,
                   label_names=info.label_names, train=cfg.train.model_dump(mode="json"), metric=cfg.search.metric,
                   mode=cfg.search.mode, torch_threads=cfg.resources.torch_threads,
                   stability=cfg.stability.model_dump(mode="json"), task=cfg.task.value,
                   chance_metric=info.chance_metric, chance_value=info.chance_value, chance_loss=info.chance_loss,
                   model_revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code,
                   run_id=info.run_id, strategy=cfg.resources.strategy,
                   generation=cfg.generation.model_dump(mode="json"))


def make_trainable(cfg: ExperimentConfig, info: RunInfo) -> Any:
    """The Tune trainable of a run; `resume` must rebuild exactly this one."""
    from ray import tune

    from raytune_llm.actors.placement import start_ledger
    from raytune_llm.actors.population import start_board
    from raytune_llm.executors import make_trial

    template = train_template(cfg, info)
    template.population_board = start_board(info.run_root)
    ledger = "" if cfg.resources.in_process else start_ledger(info.run_root)
    trial, resources = make_trial(template, cfg, storage.join(info.run_root, "train"), ledger)
    trial.__name__ = "trial"  # names the trial folders
    return tune.with_resources(trial, resources)


def restore_tuner(run_dir: Path, info: RunInfo) -> Any:
    """The search of `run_dir` as it was left: finished trials kept, unfinished ones continued from their latest
    checkpoint, and the searcher's history (Optuna's TPE) restored so the trial budget is honoured."""
    from ray import tune

    if not list(run_dir.glob("experiment_state-*.json")):
        raise UserError(f"{run_dir}: no search state to resume (it never started a trial); run `search` again")
    trainable = make_trainable(info.experiment, info)
    try:
        return tune.Tuner.restore(info.run_root, trainable, resume_unfinished=True, resume_errored=False,
                                  restart_errored=False)
    except (ModuleNotFoundError, AttributeError) as exc:
        # Tune saved the searcher and the callbacks with the search, by their module paths: a run made before the
        # package took its present layout names modules that are gone.
        if "raytune_llm" not in str(exc):
            raise
        raise UserError(f"{info.run_root} was started by an older raytune-llm ({exc}) and cannot be resumed by this "
                        "one; `status`, `report` and `export` still read it; to go on, start a new search") from None


def build_tuner(cfg: ExperimentConfig, info: RunInfo, total: dict[str, float],
                callbacks: list[Any] | None = None) -> Any:
    from ray import tune

    from raytune_llm import tracking
    from raytune_llm.actors.placement import ReleasePlacements, ledger_name
    from raytune_llm.actors.population import EndBoard, board_name
    from raytune_llm.executors import tune_checkpoints, tune_failure_retries
    from raytune_llm.search.tell import build_search

    s = cfg.search
    concurrent = concurrency(cfg, total)
    searcher, param_space = None, None
    if s.space and not s.scheduler.uses_searcher:  # PBT: a random population, steered by the scheduler
        from raytune_llm.schedulers.pbt import population

        searcher, param_space = population(s, concurrent)
    elif s.space:
        searcher = build_search(s, concurrent, tracking.journal_storage(cfg, info), tracking.study_name(cfg, info),
                                train=cfg.train, family=model_family(cfg, info))
    scheduler = s.scheduler.build(max_eval_rounds(cfg, info.sizes["train"]), s.space)
    callbacks = [*(callbacks or []), *tracking.callbacks(cfg, info), EndBoard(board_name(info.run_root))]
    if not cfg.resources.in_process:
        callbacks.append(ReleasePlacements(ledger_name(info.run_root)))
    if cfg.run.prune_stopped:
        from raytune_llm.search.pruning import PruneStoppedCheckpoints

        callbacks.append(PruneStoppedCheckpoints(info.run_root, s))
    return tune.Tuner(
        make_trainable(cfg, info),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=s.metric, mode=s.mode, search_alg=searcher, scheduler=scheduler, num_samples=s.num_trials,
            max_concurrent_trials=concurrent, time_budget_s=s.time_budget_s, reuse_actors=cfg.resources.in_process,
        ),
        run_config=tune.RunConfig(
            name=cfg.run.name, storage_path=info.run_root.rstrip("/").rsplit("/", 1)[0], verbose=0,
            callbacks=callbacks, checkpoint_config=tune_checkpoints(cfg),
            failure_config=tune.FailureConfig(max_failures=tune_failure_retries(cfg), fail_fast=False),
        ),
    )
