"""Where a trial's training runs (`resources.executor`), one registered executor each:

- `tune` (executors/inprocess.py): inside the Tune trial's own process, which Tune reuses for the next trial
  (imports, tokenizer, data and pretrained weights stay loaded): one worker, start-up in about a second once warm.
- `train` (executors/train.py): a Ray Train DDP (or FSDP) job per trial (a driver, a controller and `num_workers`
  worker processes), for multi-worker trials.

`resources.executor: auto` is `tune` for one worker, `train` for more. What both do around the loop is
`executors/worker.py`; what every Ray process is started with, `executors/env.py`. This module decides and
checks, and imports nothing heavy: the modules that run trials import Ray when a search builds its trials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from raytune_llm.core.errors import Problem
from raytune_llm.core.registry import Registry

if TYPE_CHECKING:
    from raytune_llm.schema import ExperimentConfig, ResourcesConfig
    from raytune_llm.training.spec import RunSpec

Trial = Callable[[dict[str, Any]], None]  # what a Tune trial runs: its sampled params in


class Executor:
    def resources(self, res: ResourcesConfig) -> dict[str, float]:
        """What the Tune trial asks for."""
        raise NotImplementedError

    def make_trial(self, template: RunSpec, cfg: ExperimentConfig, train_storage: str, placement_ledger: str) -> Trial:
        """The function a Tune trial runs. `placement_ledger`: where a Train trial's controller files itself so that
        its placement groups are released when it ends ("" = none)."""
        raise NotImplementedError

    def problems(self, cfg: ExperimentConfig) -> list[Problem]:
        return []


def _known(name: str, cls: Any) -> str | None:
    from raytune_llm.schema import ResourcesConfig

    choices = ResourcesConfig.model_fields["executor"].annotation.__args__
    return None if name in choices else f"not a value of resources.executor {choices}"


executors: Registry[type[Executor]] = Registry("executor", needs=("problems", "resources", "make_trial"),
                                               check=_known)


@executors.register("tune")
class InProcess(Executor):
    def resources(self, res: ResourcesConfig) -> dict[str, float]:
        return {"cpu": res.cpus_per_worker, "gpu": res.gpus_per_worker}

    def make_trial(self, template: RunSpec, cfg: ExperimentConfig, train_storage: str, placement_ledger: str) -> Trial:
        from raytune_llm.executors.inprocess import make_inprocess_trial

        return make_inprocess_trial(template, cfg.train)

    def problems(self, cfg: ExperimentConfig) -> list[Problem]:
        res = cfg.resources
        if res.executor == "tune" and res.num_workers > 1:
            return [Problem("resources.executor", f"tune trains a trial in one process; num_workers={res.num_workers} "
                            "needs executor: train (or auto)")]
        return []


@executors.register("train")
class RayTrain(Executor):
    def resources(self, res: ResourcesConfig) -> dict[str, float]:
        return {"cpu": res.driver_cpus}

    def make_trial(self, template: RunSpec, cfg: ExperimentConfig, train_storage: str, placement_ledger: str) -> Trial:
        from raytune_llm.executors.train import make_driver

        return make_driver(template, cfg.train, cfg.resources, train_storage, cfg.run, placement_ledger)



def executor_for(res: ResourcesConfig) -> Executor:
    """The executor `resources` resolve to (auto: tune for one worker, train for more)."""
    return executors.get("tune" if res.in_process else "train")()


def make_trial(template: RunSpec, cfg: ExperimentConfig, train_storage: str,
               placement_ledger: str = "") -> tuple[Trial, dict[str, float]]:
    """The function a Tune trial runs (sampled params in) and the resources the trial asks Tune for."""
    executor = executor_for(cfg.resources)
    return executor.make_trial(template, cfg, train_storage, placement_ledger), executor.resources(cfg.resources)


def tune_failure_retries(cfg: ExperimentConfig) -> int:
    """Tune's `max_failures`: an in-process trial is retried by Tune from its last checkpoint (what Train's worker
    restarts do for a DDP trial); a Train trial's retries happen inside Train."""
    return cfg.run.worker_retries if cfg.resources.in_process else 0


def tune_checkpoints(cfg: ExperimentConfig) -> Any:
    """What Tune keeps of an in-process trial's checkpoints: the `keep_checkpoints` best and, always, the latest
    (what Train keeps of a Train trial's). Train trials report no checkpoint to Tune."""
    from ray import tune

    keep = cfg.run.keep_checkpoints
    # PBT copies a donor's checkpoint a little after it recorded it: more kept, fewer copies of the donor's latest
    # instead (schedulers/pbt.py falls back to it when the recorded one is gone)
    if not cfg.search.scheduler.uses_searcher:
        keep = max(keep, 3)
    return tune.CheckpointConfig(num_to_keep=keep, checkpoint_score_attribute=cfg.search.metric,
                                 checkpoint_score_order=cfg.search.mode)
