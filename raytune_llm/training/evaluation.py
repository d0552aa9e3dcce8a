"""Evaluation of a model on a prepared split, over all DDP workers (each takes every n-th row), in row order; and
the precision settings evaluation shares with training. Used by the training loop and by export's self-check."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from raytune_llm.schema import GenerationConfig, TrainConfig
from raytune_llm.tasks import MODEL_COLUMNS, Task
from raytune_llm.tasks.base import INDEX
from raytune_llm.training.sharding import is_sharded

if TYPE_CHECKING:
    from raytune_llm.training.spec import Session


def gather(obj: Any, world_size: int) -> list[Any]:
    if world_size == 1:
        return [obj]
    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


@dataclass
class EvalContext:
    """What evaluation needs besides the model and the data."""

    task: Task
    label_names: list[str]
    tokenizer: Any
    collate: Any
    generation: GenerationConfig


def _to(inputs: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in inputs.items()}


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: Any, ctx: EvalContext, cfg: TrainConfig, session: Session,
             autocast: dict[str, Any]) -> tuple[dict[str, float], list[Any]]:
    """The task's metrics over the whole eval split, each worker taking every n-th row; predictions in row order."""
    model.eval()
    rank, world = session.rank, session.world_size
    indices = list(range(rank, len(dataset), world))
    preds, refs, loss_sum, count = [], [], 0.0, 0
    batches = range(0, len(indices), cfg.eval_batch_size)
    if is_sharded(model):  # every rank runs as many forward passes: FSDP's all-gathers need them all
        batches = range(0, math.ceil(len(dataset) / world), cfg.eval_batch_size)
    for start in batches:
        chunk = indices[start : start + cfg.eval_batch_size]
        if not chunk:  # this rank's rows are done: a forward pass all the same, its result discarded
            rows = [{**dataset[0], INDEX: 0}]
            ctx.task.eval_batch(model, _to(ctx.collate([{k: rows[0][k] for k in MODEL_COLUMNS if k in rows[0]}]),
                                           session.device), rows, autocast, ctx.tokenizer, ctx.generation)
            continue
        rows = [{**row, INDEX: i} for i, row in zip(chunk, dataset.select(chunk))]
        batch = _to(ctx.collate([{k: r[k] for k in MODEL_COLUMNS if k in r} for r in rows]), session.device)
        out = ctx.task.eval_batch(model, batch, rows, autocast, ctx.tokenizer, ctx.generation)
        preds += out.preds
        refs += out.refs
        loss_sum, count = loss_sum + out.loss_sum, count + out.count
    model.train()
    shards = gather((indices, preds, refs, loss_sum, count), world)
    ordered = sorted(((i, p, y) for idx, ps, ys, _, _ in shards for i, p, y in zip(idx, ps, ys)),
                     key=lambda t: t[0])
    all_preds, all_refs = [p for _, p, _ in ordered], [y for _, _, y in ordered]
    loss = sum(s[3] for s in shards) / max(sum(s[4] for s in shards), 1)
    metrics = ctx.task.metrics(all_preds, all_refs, ctx.label_names, loss)
    return {f"eval_{k}": v for k, v in metrics.items()}, all_preds
