"""What a run says about its start, once, in its reports: how long each part took from the trial's start (the
launch until the loop ran, the data, the model), where each rank ran, what the process had cached, and what the
model is (weight dtypes, autocast, trainable parameters, strategy). `benchmarks/overhead.py` reads these."""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from raytune_llm.core import process_cache
from raytune_llm.models.build import trainable_params, weight_dtypes
from raytune_llm.training.evaluation import gather


def startup_facts(started_at: float, entered_at: float, data_at: float, model_at: float, node_id: str, world: int,
                  model: torch.nn.Module, autocast: str, strategy: str) -> dict[str, Any]:
    """Called at the first training step (every rank: `gather` is a collective)."""
    now = time.time()
    return {"startup_s": now - started_at, "startup_launch_s": entered_at - started_at,
            "startup_data_s": data_at - entered_at, "startup_model_s": model_at - data_at,
            "worker_nodes": ",".join(gather(node_id, world)),  # where each rank ran
            **weight_dtypes(model), "autocast": autocast, "trainable_params": trainable_params(model),
            "first_step_at": now, "worker_pid": os.getpid(), "startup_cached": ",".join(process_cache.hits),
            "strategy": strategy if world > 1 else "single"}
