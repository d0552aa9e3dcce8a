"""The in-process executor: a single-worker trial trains inside its Tune trial's own process.

Tune reuses the process for the next trial (`reuse_actors`), so imports, the tokenizer, the memory-mapped data
and the pretrained weights (raytune_llm.core.process_cache) are paid for once per process, not once per trial. A
trial the scheduler stops ends at its next report (Tune raises SystemExit in the trial's thread there), so the
next trial can take over the process at once; everything the trial made (model, optimizer, GPU memory) is
released before it does. A trial that raised never gets its process reused (Tune's rule).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
import ray.tune
import torch
from ray.train._internal.session import get_session

from raytune_llm.core import process_cache
from raytune_llm.executors import worker
from raytune_llm.schema import TrainConfig
from raytune_llm.schema.space import apply_params
from raytune_llm.training.spec import RunSpec


def _next_checkpoint_path() -> str:
    """Where Tune will persist the checkpoint about to be reported, stored in the report itself (as Train's
    runs store `checkpoint_path`) so that export and status find it from the trial's results alone."""
    from ray.train._internal.storage import StorageContext

    storage = get_session().storage
    name = StorageContext._make_checkpoint_dir_name(storage.current_checkpoint_index + 1)
    return f"{storage.trial_fs_path.rstrip('/')}/{name}"


class TuneSession:
    """The loop's Session inside a Tune trial: one worker, reports and checkpoints through Tune."""

    rank = 0
    world_size = 1

    def __init__(self, use_gpu: bool) -> None:
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.node_id = ray.get_runtime_context().get_node_id()
        self.trial_id = ray.tune.get_context().get_trial_id()
        # Where report_with_checkpoint stages a checkpoint: beside its final place, so that moving it is a rename.
        storage = get_session().storage
        staging = worker.staging_folder(storage.storage_filesystem, storage.trial_fs_path)
        self.staging_dir = str(staging) if staging else None

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        if checkpoint_dir is None:
            ray.tune.report(metrics)
            return
        target = _next_checkpoint_path()
        metrics = {**metrics, "checkpoint_path": target}
        if self.staging_dir is not None:
            worker.place_checkpoint(checkpoint_dir, Path(target))
        ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(str(checkpoint_dir)))

    def restore_dir(self) -> Path | None:
        return worker.local_checkpoint(ray.tune.get_checkpoint(), self.rank)

    def peers_learnt(self, board: str, fraction: float, above_chance: bool) -> bool | None:
        from raytune_llm.actors.population import ask

        return ask(board, self.trial_id, fraction, above_chance) if board else None


def release_memory(device: torch.device) -> None:
    """What the last trial held, given back before the process runs the next one."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def make_inprocess_trial(template: RunSpec, train: TrainConfig) -> Callable[[dict[str, Any]], None]:
    """The Tune function trainable: sampled params in, the training loop run right here."""
    def trial(params: dict[str, Any]) -> None:
        started = time.time()
        process_cache.keep_weights()
        resolved = apply_params(train, params)
        spec = RunSpec(**{**template.to_dict(), "train": resolved.model_dump(mode="json"), "started_at": started})
        session = TuneSession(use_gpu=bool(ray.get_gpu_ids()))
        worker.run_then_release(spec, session, lambda: release_memory(session.device))

    return trial
