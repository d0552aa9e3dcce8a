"""What every executor does around the training loop, whichever process runs it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from raytune_llm import storage, train_loop
from raytune_llm.train_loop import RunSpec, Session


def run(spec: RunSpec, session: Session) -> dict[str, Any]:
    """The loop on this node's copy of the run's inputs, with a CUDA out-of-memory error told as such."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # A run on a cloud URI: read its inputs from this node's cached copy.
    for field in ("model_path", "tokenizer_path", "data_path"):
        setattr(spec, field, storage.node_copy(getattr(spec, field), spec.run_id))
    try:
        return train_loop.run(spec, session)
    except torch.cuda.OutOfMemoryError as exc:
        # Its own reason in `status`: the fix (smaller batch or max_length, fewer trials per GPU) differs.
        raise RuntimeError(f"CUDA out of memory: {str(exc).splitlines()[0]}") from exc


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
