"""Gradient accumulation: one optimizer step's batch computed a micro-batch at a time.

`train.batch_size` is the global batch of an optimizer step; each worker holds `batch_size / num_workers` rows of
it and computes them `train.micro_batch_size` rows at a time. The gradients are those of the whole batch's mean
loss (each micro-batch's mean weighs by its share of the loss terms), and DDP all-reduces once per step, on the
last micro-batch. `micro_batch_size: auto` starts with the whole per-worker batch and halves it when a step runs
out of memory, then goes on (single-worker trials: under DDP one rank cannot redo a step alone).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
import torch.distributed as dist

from raytune_llm.tasks import Task
from raytune_llm.training.sharding import no_sync

Batch = dict[str, torch.Tensor]


def sum_over_workers(value: float, device: torch.device) -> float:
    if dist.is_available() and dist.is_initialized():
        t = torch.tensor(value, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return float(t)
    return value


def split(batch: Batch, size: int) -> list[Batch]:
    """The batch in micro-batches of `size` rows (the last may be smaller). Rows keep their padding: the collator
    padded the whole batch, so a micro-batch computes exactly what it computed inside the batch."""
    rows = len(batch["labels"])
    return [{k: v[i : i + size] for k, v in batch.items()} for i in range(0, rows, size)]


def loss_weights(task: Task, parts: list[Batch], world: int, device: torch.device) -> list[float]:
    """What each micro-batch's mean loss is multiplied by so that the gradients add up to those of the step's
    mean loss: its share of the loss terms (rows; tokens for a token-level loss). DDP averages the workers'
    gradients, which is the global mean only when every worker holds as many terms; for a token-level loss each
    worker's share of all workers' tokens is weighed in too."""
    terms = [task.loss_terms(p["labels"]) for p in parts]
    whole: float = sum(terms)
    if task.token_level and world > 1:
        whole = sum_over_workers(whole, device) / world
    return [t / whole if whole else 0.0 for t in terms]


class MicroBatches:
    """Runs the forward and backward passes of one optimizer step, a micro-batch at a time."""

    def __init__(self, per_worker: int, setting: int | str | None, world: int) -> None:
        self.size = per_worker if setting in (None, "auto") else min(int(setting), per_worker)
        self.adaptive = setting == "auto" and world == 1
        self.halvings: list[int] = []  # the micro-batch sizes given up, in order (reported)

    def backward(self, batch: Batch, ddp: torch.nn.Module, loss_of: Callable[[Batch, float], torch.Tensor],
                 penalty: Callable[[], torch.Tensor | float], task: Task, world: int, device: torch.device,
                 sync_last: Callable[[], Any] = nullcontext,
                 scale: Callable[[torch.Tensor], torch.Tensor] = lambda loss: loss) -> torch.Tensor:
        """Accumulate the step's gradients; returns this worker's (weighted) batch loss. `sync_last` is the context
        of the last backward (FGM's: no all-reduce yet); the ones before it never all-reduce. `scale`: fp16's loss
        scaling (precision.LossScaler)."""
        while True:
            try:
                return self._accumulate(batch, ddp, loss_of, penalty, task, world, device, sync_last, scale)
            except torch.OutOfMemoryError:
                if not self.adaptive or self.size == 1:
                    raise
                self._give_up_half(ddp)

    def _accumulate(self, batch: Batch, ddp: torch.nn.Module, loss_of: Callable[[Batch, float], torch.Tensor],
                    penalty: Callable[[], torch.Tensor | float], task: Task, world: int, device: torch.device,
                    sync_last: Callable[[], Any], scale: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        parts = split(batch, self.size)
        weights = loss_weights(task, parts, world, device)
        total = torch.zeros((), device=device)
        for i, (part, weight) in enumerate(zip(parts, weights)):
            last = i == len(parts) - 1
            with sync_last() if last else no_sync(ddp):
                loss = loss_of(part, weight)
                scale(loss + penalty() if last else loss).backward()  # the step's L2-SP penalty counts once
            total += loss.detach().float()
        return total

    def _give_up_half(self, ddp: torch.nn.Module) -> None:
        for p in ddp.parameters():
            p.grad = None  # the failed step's partial gradients
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.halvings.append(self.size)
        self.size = max(1, self.size // 2)
        print(f"out of memory at micro_batch_size={self.halvings[-1]}: continuing with {self.size}", flush=True)
