"""The in-process executor: a single-worker trial trains inside its Tune trial's own process.

Tune reuses the process for the next trial (`reuse_actors`), so imports, the tokenizer, the memory-mapped data
and the pretrained weights (raytune_llm.process_cache) are paid for once per process, not once per trial. A
trial the scheduler stops ends at its next report (Tune raises SystemExit in the trial's thread there), so the
next trial can take over the process at once; everything the trial made (model, optimizer, GPU memory) is
released before it does. A trial that raised never gets its process reused (Tune's rule).
"""

from __future__ import annotations

import gc
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
import ray.tune
import torch

from raytune_llm import process_cache
from raytune_llm.checkpoint import STAGING_PREFIX
from raytune_llm.config import TrainConfig
from raytune_llm.executors import worker
from raytune_llm.space import apply_params
from raytune_llm.train_loop import RunSpec


def _next_checkpoint_path() -> str:
    """Where Tune will persist the checkpoint about to be reported, stored in the report itself (as Train's
    runs store `checkpoint_path`) so that export and status find it from the trial's results alone."""
    from ray.train._internal.session import get_session
    from ray.train._internal.storage import StorageContext

    storage = get_session().storage
    name = StorageContext._make_checkpoint_dir_name(storage.current_checkpoint_index + 1)
    return f"{storage.trial_fs_path.rstrip('/')}/{name}"


def _local_trial_dir() -> Path | None:
    """The trial's folder when the run's storage is a local (or mounted shared) filesystem, else None."""
    import pyarrow.fs
    from ray.train._internal.session import get_session

    storage = get_session().storage
    if not isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
        return None
    return Path(storage.trial_fs_path)


def place_checkpoint(staged: Path, target: Path) -> None:
    """Move a staged checkpoint's files to where Tune will persist it, leaving `staged` empty, so that Tune's copy
    of it copies nothing. Staged on the same filesystem, the moves are renames: Tune's chunked copy of the same
    files took 0.5 s a checkpoint (MiniLM weights and AdamW state, 270 MB) with two trials on two cores, about a
    tenth of an evaluation round of the search benchmark."""
    if target.exists():  # a folder of this index that Tune never recorded (the driver died): Tune overwrites it
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for entry in staged.iterdir():
        shutil.move(str(entry), str(target / entry.name))


class TuneSession:
    """The loop's Session inside a Tune trial: one worker, reports and checkpoints through Tune."""

    rank = 0
    world_size = 1

    def __init__(self, use_gpu: bool) -> None:
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.node_id = ray.get_runtime_context().get_node_id()
        self.trial_id = ray.tune.get_context().get_trial_id()
        self.trial_dir = _local_trial_dir()
        # Where report_with_checkpoint stages a checkpoint: beside its final place, so that moving it is a rename.
        self.staging_dir = str(self.trial_dir) if self.trial_dir else None
        if self.trial_dir:
            self.trial_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.trial_dir.glob(f"{STAGING_PREFIX}*"):  # staged when this trial's process was killed
                try:
                    shutil.rmtree(stale)
                except OSError as exc:  # only garbage: the trial goes on
                    print(f"warning: could not delete {stale}: {exc}")

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        if checkpoint_dir is None:
            ray.tune.report(metrics)
            return
        target = _next_checkpoint_path()
        metrics = {**metrics, "checkpoint_path": target}
        if self.trial_dir is not None:
            place_checkpoint(checkpoint_dir, Path(target))
        ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(str(checkpoint_dir)))

    def restore_dir(self) -> Path | None:
        return worker.local_checkpoint(ray.tune.get_checkpoint(), self.rank)

    def peers_learnt(self, board: str, fraction: float, above_chance: bool) -> bool | None:
        from raytune_llm.population import ask

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
        try:
            worker.run(spec, session)
        finally:
            release_memory(session.device)

    return trial
