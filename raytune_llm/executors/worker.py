"""What every executor does around the training loop, whichever process runs it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from raytune_llm.core import storage
from raytune_llm.core.storage import STAGING_PREFIX
from raytune_llm.training import loop
from raytune_llm.training.spec import RunSpec, Session


def run(spec: RunSpec, session: Session) -> dict[str, Any]:
    """The loop on this node's copy of the run's inputs, with a CUDA out-of-memory error told as such."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # A run on a cloud URI: read its inputs from this node's cached copy.
    for field in ("model_path", "tokenizer_path", "data_path"):
        setattr(spec, field, storage.node_copy(getattr(spec, field), spec.run_id))
    try:
        return loop.run(spec, session)
    except torch.cuda.OutOfMemoryError as exc:
        # Its own reason in `status`: the fix (smaller batch or max_length, fewer trials per GPU) differs.
        raise RuntimeError(f"CUDA out of memory: {str(exc).splitlines()[0]}") from exc


def run_then_release(spec: RunSpec, session: Session, release: Callable[[], None]) -> dict[str, Any]:
    """`run`, then `release` once nothing holds what the trial made. Tune stops a trial by raising SystemExit at its
    next report; while that exception lives, its traceback holds the loop's frames (the model, the optimizer, their
    GPU memory), so a release in a `finally` freed nothing and a trial packed on the same GPU could run out of
    memory. The exception is let go first, the memory released, and SystemExit raised again for Tune."""
    try:
        last = run(spec, session)
    except SystemExit:
        stopped = True
    except BaseException:
        release()  # Tune never reuses the process of a trial that raised: it goes, and its memory with it
        raise
    else:
        stopped = False
    release()
    if stopped:
        raise SystemExit(0)
    return last


def local_checkpoint(checkpoint: Any, rank: int) -> Path | None:
    """A Ray (Train or Tune) checkpoint as a local folder to read: in place when it is on this machine."""
    import pyarrow.fs

    if checkpoint is None:
        return None
    if isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem):
        return Path(checkpoint.path)
    # One private copy per rank: with the default target, ranks on one node copy into the same folder at once
    # and one of them can read a file the other is still writing (seen as a corrupt trainer_state.pt).
    return Path(checkpoint.to_directory(tempfile.mkdtemp(prefix=f"rtl-restore-rank{rank}-")))


def staging_folder(filesystem: Any, fs_path: str) -> Path | None:
    """Where a session stages its checkpoints: `fs_path`, the folder Ray persists them in, when the run's storage
    is a local (or mounted shared) filesystem, so that moving one into place is a rename; else None (Ray copies
    them from a temporary folder). What a killed process had staged there is cleared."""
    import pyarrow.fs

    if not isinstance(filesystem, pyarrow.fs.LocalFileSystem):
        return None
    folder = Path(fs_path)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{STAGING_PREFIX}*"):
        try:
            shutil.rmtree(stale)
        except OSError as exc:  # only garbage: the run goes on
            print(f"warning: could not delete {stale}: {exc}")
    return folder


def place_checkpoint(staged: Path, target: Path) -> None:
    """Move a staged checkpoint's files to where Ray will persist it, leaving `staged` empty. Staged on the same
    filesystem, the moves are renames: Ray's chunked copy of the same files took 0.5 s a checkpoint (MiniLM
    weights and AdamW state, 270 MB) with two trials on two cores, and grows with the model."""
    if target.exists():  # a folder of this name that Ray never recorded (the process died): replaced, not merged
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for entry in staged.iterdir():
        shutil.move(str(entry), str(target / entry.name))
