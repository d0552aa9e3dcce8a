"""The Ray Train adapter: runs the training loop as a DDP job on a TorchTrainer.

Under Tune (Ray 2.60, Train V2) a trial is a Tune *function* (the driver) that builds a TorchTrainer and
calls `fit()`; TuneReportCallback forwards rank 0's reports, which the loop has already all-reduced.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import ray.tune
import torch

from raytune_llm.core import storage
from raytune_llm.executors import worker
from raytune_llm.executors.env import START_ATTEMPT_S, history_row
from raytune_llm.executors.worker import local_checkpoint
from raytune_llm.schema import ResourcesConfig, RunConfig, TrainConfig
from raytune_llm.schema.space import apply_params
from raytune_llm.training.spec import RunSpec


class RayTrainSession:
    """The loop's Session on a Ray Train worker."""

    def __init__(self) -> None:
        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        self.node_id = ray.get_runtime_context().get_node_id()
        # Rank 0 stages its checkpoints (report_with_checkpoint) beside their final place in the trial's Train
        # folder and moves them there, where Ray's default upload would copy them.
        self.storage = ray.train.get_context().get_storage()
        staging = (worker.staging_folder(self.storage.storage_filesystem, self.storage.experiment_fs_path)
                   if self.rank == 0 else None)
        self.staging_dir = str(staging) if staging else None

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        if checkpoint_dir is None:
            ray.train.report(metrics)
            return
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(checkpoint_dir)),
                         checkpoint_upload_fn=self.move_into_place if self.staging_dir else None)

    def move_into_place(self, checkpoint: ray.train.Checkpoint, name: str) -> ray.train.Checkpoint:
        """Ray Train's upload of a checkpoint (`checkpoint_upload_fn`), by renames."""
        target = self.storage.build_checkpoint_path_from_name(name)
        worker.place_checkpoint(Path(checkpoint.path), Path(target))
        return ray.train.Checkpoint(target, filesystem=self.storage.storage_filesystem)

    def peers_learnt(self, board: str, fraction: float, above_chance: bool) -> bool | None:
        if not board:
            return None
        from raytune_llm.actors.population import ask

        answer = [ask(board, ray.train.get_context().get_experiment_name(), fraction, above_chance)
                  if self.rank == 0 else None]
        if self.world_size > 1:  # rank 0's answer for all: the ranks must agree on the verdict
            torch.distributed.broadcast_object_list(answer, src=0)
        return answer[0]

    def restore_dir(self) -> Path | None:
        return local_checkpoint(ray.train.get_checkpoint(), self.rank)


def worker_loop(config: dict[str, Any]) -> None:
    """Entry point of each DDP worker."""
    worker.run(RunSpec(**config), RayTrainSession())


class EvalHistory(ray.train.UserCallback):
    """Every evaluation of a run as one JSON line in `uri` (a run folder's history.jsonl, local or remote),
    rewritten after each report: checkpoint pruning keeps only the best and the latest, the history keeps all.
    Runs on Train's controller, which may be on another node than the driver: hence a storage path."""

    def __init__(self, uri: str) -> None:
        self.uri, self.rows = uri, []

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        import json

        self.rows.append(history_row(metrics[0]))  # rank 0's
        text = "".join(json.dumps(r) + "\n" for r in self.rows)
        if storage.is_uri(self.uri):
            fs, path = storage.filesystem(self.uri)
            with fs.open_output_stream(path) as out:
                out.write(text.encode())
        else:
            Path(self.uri).write_text(text)


def placement_retries(resources: ResourcesConfig) -> int:
    """Train's `controller_failure_limit`: how often a worker group that did not start is tried again, so that
    the attempts span `resources.start_timeout_s`; -1 = without end."""
    if resources.start_timeout_s is None:
        return -1
    return max(1, math.ceil(resources.start_timeout_s / START_ATTEMPT_S)) - 1


def start_failure(exc: Exception, resources: ResourcesConfig) -> RuntimeError | None:
    """What to tell the user when Train gave up placing a trial's workers; None for any other failure.
    Train's own message names its 30 s attempt and an environment variable; what the user controls is this."""
    if type(getattr(exc, "controller_failure", None)).__name__ != "WorkerGroupStartupTimeoutError":
        return None
    return RuntimeError(
        f"the trial's {resources.num_workers} worker(s) found no free resources within "
        f"resources.start_timeout_s={resources.start_timeout_s:g} s (other trials or jobs held them); raise "
        "resources.start_timeout_s (null = wait as long as the search runs) or free the cluster")


def build_trainer(spec: RunSpec, resources: ResourcesConfig, storage_path: str, name: str, run: RunConfig,
                  callbacks: list[Any] | None = None) -> ray.train.torch.TorchTrainer:
    """A DDP job for one training run. Calling fit() again with the same name and storage resumes it from its
    latest checkpoint (Train keeps a snapshot of its checkpoints there), which is how `resume` continues
    in-flight trials; a lost worker restarts the worker group from that checkpoint up to `worker_retries` times."""
    use_gpu = resources.gpus_per_worker > 0
    per_worker = {"CPU": resources.cpus_per_worker}
    if use_gpu:
        per_worker["GPU"] = resources.gpus_per_worker
    return ray.train.torch.TorchTrainer(
        worker_loop,
        train_loop_config=spec.to_dict(),
        scaling_config=ray.train.ScalingConfig(
            num_workers=resources.num_workers, use_gpu=use_gpu, resources_per_worker=per_worker,
            placement_strategy=resources.placement_strategy,
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage_path,
            # Train keeps the `keep_checkpoints` best and, always, the latest: best + last per trial.
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=run.keep_checkpoints, checkpoint_score_attribute=spec.metric,
                checkpoint_score_order=spec.mode,
            ),
            failure_config=ray.train.FailureConfig(max_failures=run.worker_retries,
                                                   controller_failure_limit=placement_retries(resources)),
            callbacks=callbacks or [],
        ),
    )


def make_driver(template: RunSpec, train: TrainConfig, resources: ResourcesConfig, train_storage: str,
                run: RunConfig, placement_ledger: str = "") -> Callable[[dict[str, Any]], None]:
    """The Tune function trainable: sampled params in, one TorchTrainer run per trial. `placement_ledger`: where
    each trial's Train controller files itself so that its placement groups are released when it ends."""
    from ray.tune.integration.ray_train import TuneReportCallback

    def driver(params: dict[str, Any]) -> None:
        started = time.time()
        resolved = apply_params(train, params)
        spec = RunSpec(**{**template.to_dict(), "train": resolved.model_dump(mode="json"), "started_at": started})
        trial_id = ray.tune.get_context().get_trial_id()
        callbacks = [TuneReportCallback()]
        if placement_ledger:
            from raytune_llm.actors.placement import RecordController

            callbacks.append(RecordController(placement_ledger, trial_id))
        trainer = build_trainer(spec, resources, train_storage, trial_id, run, callbacks)
        try:
            trainer.fit()
        except ray.train.ControllerError as exc:
            explained = start_failure(exc, resources)
            if explained is None:
                raise
            raise explained from exc

    return driver
