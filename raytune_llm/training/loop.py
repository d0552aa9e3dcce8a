"""The per-worker fine-tuning loop. Reads top to bottom; knows nothing about Ray.

It runs under Ray Train (one process per DDP worker, process group already set up) or bare in one
process; the caller passes a `Session` that says who this worker is and where reports go.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from raytune_llm.core import process_cache
from raytune_llm.core.outcomes import REAL_PREFIX, is_failure, worst_value
from raytune_llm.models.build import build_model
from raytune_llm.models.pretrained import hub_kwargs
from raytune_llm.models.quantization import is_quantized
from raytune_llm.schema import GenerationConfig, StabilityConfig, TrainConfig
from raytune_llm.tasks import get_task
from raytune_llm.training.accumulation import MicroBatches, loss_weights
from raytune_llm.training.augmentation import augmented
from raytune_llm.training.batching import train_loader
from raytune_llm.training.checkpoint import load_state, report_with_checkpoint
from raytune_llm.training.consistency import doubled, rdrop_loss
from raytune_llm.training.distillation import distilled_loss, load_teacher
from raytune_llm.training.evaluation import EvalContext, evaluate
from raytune_llm.training.levers import (
    L2SP,
    Freezer,
    fgm_backward,
    first_backward_context,
    param_groups,
    reinit_top_layers,
)
from raytune_llm.training.precision import OVERFLOW_PATIENCE, LossScaler, autocast_for, resolve
from raytune_llm.training.sharding import shard
from raytune_llm.training.sparsity import hold_zeros
from raytune_llm.training.spec import RunSpec, Session
from raytune_llm.training.stability import StabilityGuard, Verdict
from raytune_llm.training.startup import startup_facts
from raytune_llm.training.window import StepWindow

# ---------------------------------------------------------------- helpers


def _mean_over_workers(value: torch.Tensor) -> float:
    value = value.detach().float()
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return float(value)


def _scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, warmup: int, total: int) -> Any:
    from transformers import get_scheduler

    name = "cosine_with_restarts" if cfg.schedule.name == "cyclic" else cfg.schedule.name
    extra = {"num_cycles": cfg.schedule.cycles} if cfg.schedule.name == "cyclic" else None
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total,
                         scheduler_specific_kwargs=extra)


def _batches(loader: torch.utils.data.DataLoader, start_step: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches, epoch after epoch, resuming at `start_step` in the same data order."""
    epoch, skip = divmod(start_step, len(loader))
    while True:
        loader.sampler.set_epoch(epoch)
        if hasattr(loader.dataset, "set_epoch"):  # augmented rows: each epoch's edits are its own
            loader.dataset.set_epoch(epoch)
        for i, batch in enumerate(loader):
            if i >= skip:
                yield batch
        epoch, skip = epoch + 1, 0


# ---------------------------------------------------------------- the loop


def run(spec: RunSpec, session: Session) -> dict[str, Any]:
    """Train, evaluating and reporting every `eval_every` steps. Returns the last report."""
    import datasets
    from transformers import AutoTokenizer

    entered_at = time.time()
    cfg = TrainConfig.model_validate(spec.train)
    if spec.torch_threads:
        torch.set_num_threads(spec.torch_threads)
    torch.manual_seed(cfg.seed)  # identical initial weights on every worker
    device, rank, world = session.device, session.rank, session.world_size
    autocast, precision = autocast_for(cfg.precision, device), resolve(cfg.precision, device)

    # Data: the tokenised Arrow cache made once per search; padding per batch.
    process_cache.new_trial()
    data = process_cache.shared("data", spec.data_path, lambda: datasets.load_from_disk(spec.data_path))
    train_ds, eval_ds = data["train"], data["eval"]
    tokenizer = process_cache.shared("tokenizer", spec.tokenizer_path,
                                     lambda: AutoTokenizer.from_pretrained(spec.tokenizer_path))
    task = get_task(spec.task)
    collate = task.collator(tokenizer)
    ctx = EvalContext(task, spec.label_names, tokenizer, collate, GenerationConfig.model_validate(spec.generation))
    loader = train_loader(train_ds, cfg, world, rank, collate, spec.data_path)
    if len(loader) == 0:
        raise ValueError(f"train split has {len(train_ds)} rows, fewer than one batch of {cfg.batch_size}")
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(loader)))
    warmup_steps = round(cfg.schedule.warmup_ratio * total_steps)
    data_at = time.time()

    # Model with its stability levers, optimizer, schedule.
    model = build_model(spec.model_path, spec.label_names, cfg, spec.tokenizer_path, spec.task,
                        tokenizer.pad_token_id,
                        frozen_dtype=autocast["dtype"] if autocast["enabled"] else None,
                        **hub_kwargs(spec.model_revision, spec.trust_remote_code))
    if cfg.augment.method != "none":  # edited rows; their synonyms come from the model's own input embeddings
        loader = train_loader(augmented(train_ds, cfg, tokenizer, model, spec.data_path, task.token_level), cfg,
                              world, rank, collate, spec.data_path)
    if not spec.trained_head:  # a fine-tuned model trained on (compression) keeps the head it learnt
        task.init_head(model, train_ds)
    reinit_top_layers(model, cfg.reinit_top_layers)
    if not is_quantized(model):
        model.to(device)
    if spec.hold_zeros:  # a pruned model's recovery: what was pruned stays pruned
        hold_zeros(model)
    teacher = (load_teacher(spec.teacher_path, spec.task, device, spec.distill_temperature, spec.distill_alpha)
               if spec.teacher_path else None)
    model.train()
    model_at = time.time()
    trainable = [p for p in model.parameters() if p.requires_grad]
    freezer = Freezer(model, cfg.freeze_bottom_layers, cfg.unfreeze_every)
    l2sp = L2SP(model, cfg.l2sp, cfg.reinit_top_layers)
    if world > 1 and spec.strategy == "fsdp":
        ddp = shard(model)  # sharded in place: the parameters are new (DTensor) objects
        trainable = [p for p in model.parameters() if p.requires_grad]
    else:
        ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = cfg.optimizer
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps)
    scheduler = _scheduler(cfg, optimizer, warmup_steps, total_steps)
    scaler = LossScaler(precision, device)
    step = 0

    # The stability guard; chance level = what the task scores when nothing was learnt (e.g. the majority class).
    baseline, chance_metric, chance_loss = spec.chance_value, spec.chance_metric, spec.chance_loss
    if baseline is None:
        chance = task.chance_level(eval_ds, spec.label_names)
        baseline, chance_metric, chance_loss = (chance.value, chance.metric, chance.loss) if chance else (0.0, "", None)
    guard = StabilityGuard(StabilityConfig.model_validate(spec.stability), warmup_steps, total_steps, baseline,
                           spec.mode, chance_metric, chance_loss, len(eval_ds))
    if (restore := session.restore_dir()) is not None:  # what the guard had seen comes back with the weights
        step = load_state(restore, model, optimizer, scheduler, cfg.peft.method, scaler, guard)
    worst = worst_value(spec.metric, spec.mode)
    rdrop = cfg.consistency.alpha > 0

    def task_loss(batch: dict[str, torch.Tensor], weight: float) -> torch.Tensor:
        """The batch's mean loss times `weight` (accumulation.loss_weights)."""
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with torch.autocast(**autocast):
            logits = ddp(**(doubled(inputs) if rdrop else inputs)).logits
        if not weight:  # no loss terms here (the mean is NaN), but DDP needs a backward through every parameter
            return logits.float().sum() * 0.0
        if rdrop:  # R-Drop: each row's two dropout passes, kept close
            loss, logits = rdrop_loss(logits, batch["labels"], cfg.consistency.alpha,
                                      lambda x: task.loss(x, batch["labels"], cfg.label_smoothing),
                                      spec.task == "regression", task.token_level)
        else:
            loss = task.loss(logits, batch["labels"], cfg.label_smoothing)
        if teacher is not None:  # a distilled student: the teacher's soft targets beside the labels
            loss = distilled_loss(teacher, spec.task, inputs, logits, batch["labels"], loss, autocast)
        return loss * weight

    # Train.
    max_norm = cfg.grad_clip if cfg.grad_clip is not None else float("inf")
    micro = MicroBatches(cfg.batch_size // world, cfg.micro_batch_size, world)
    fgm = cfg.fgm_epsilon > 0
    window = StepWindow()
    startup: dict[str, float] = {}
    last: dict[str, Any] = {}
    batches = _batches(loader, step)
    try:
        while step < total_steps:
            t = time.perf_counter()
            batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
            if not startup:
                startup = startup_facts(spec.started_at, entered_at, data_at, model_at, session.node_id, world, model,
                                        precision if autocast["enabled"] else "off", spec.strategy)
            loss = micro.backward(batch, ddp, task_loss, l2sp.penalty, task, world, device,
                                  lambda: first_backward_context(ddp, fgm), scaler.scale)
            if fgm:  # one micro-batch per step (rules): the adversarial pass is the whole batch's
                fgm_backward(model, cfg.fgm_epsilon,
                             lambda b=batch: scaler.scale(task_loss(b, loss_weights(task, [b], world, device)[0])))
            freezer.drop_frozen_grads(step)
            scaler.unscale(optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, max_norm))
            loss_value = _mean_over_workers(loss)
            window.saw(loss_value, grad_norm)
            overflowed = scaler.skips(loss_value, grad_norm)
            if overflowed:  # fp16 overflow: the scaler skips the update and lowers its scale
                verdict = Verdict("non_finite", f"fp16: the gradients overflowed in {OVERFLOW_PATIENCE} steps in a row "
                                  "however far the loss scale fell") if scaler.overflow_persists else Verdict()
            else:
                verdict = guard.check_step(step, loss_value, grad_norm)
            if verdict:  # never apply this step's update
                optimizer.zero_grad(set_to_none=True)
                # `step` counts completed steps; the trace ends with this one, step + 1 (results.trials.step_trace)
                last = {spec.metric: worst, "stop_reason": verdict.reason, "stop_detail": verdict.detail, "step": step,
                        "total_steps": total_steps, **window.trace(), "trace_last_step": step + 1,
                        **{f"stop_{k}": v for k, v in verdict.values.items()}}
                session.report(last, None)
                return last
            scaler.step(optimizer)
            if not overflowed:  # as accelerate does: an update that was skipped does not advance the schedule
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window.applied(loss_value, None if overflowed else grad_norm, batch, time.perf_counter() - t)

            if step % cfg.eval_every == 0 or step == total_steps:
                eval_metrics, preds = evaluate(model, eval_ds, ctx, cfg, session, autocast)
                last = {
                    **eval_metrics,
                    **window.metrics(device),
                    "lr": max(scheduler.get_last_lr()),  # the head's: layer-wise decay only lowers the others
                    "step": step,
                    "total_steps": total_steps,
                    "epoch": step / len(loader),
                    "micro_batch_size": micro.size,
                    **scaler.report(),
                    "chance_value": baseline,
                    "stop_reason": "",
                    **window.trace(),
                    **startup,
                }
                window.reset()
                if not math.isfinite(last.get(spec.metric, 0.0)):  # guard off: keep the report finite anyway
                    last.update({spec.metric: worst, "objective_non_finite": True})
                peers = None
                if guard.wants_population:
                    peers = session.peers_learnt(spec.population_board, step / total_steps,
                                                 guard.left_chance(eval_metrics))
                verdict = guard.check_eval(step, {**eval_metrics, "train_loss": last["train_loss"]}, last[spec.metric],
                                           peers_learnt=peers)
                last.update(guard.chance_report(step, eval_metrics))
                if verdict:
                    last.update(stop_reason=verdict.reason, stop_detail=verdict.detail)
                if is_failure(verdict.reason):
                    # The searcher sees the worst value; the real one stays beside it, with this checkpoint, so a
                    # search whose every trial the guard stopped still has something to show and export.
                    last.update({spec.metric: worst, REAL_PREFIX + spec.metric: last[spec.metric]})
                report_with_checkpoint(session, last, model, optimizer, scheduler, step, preds, scaler, guard)
                if verdict:
                    return last
    except torch.OutOfMemoryError as exc:
        if world > 1:  # one rank cannot report alone (the others wait in a collective): Ray Train ends the group
            raise
        # A failure of these params, told to the searcher like a guard stop (the worst value, with the reason),
        # so that it steers away: an error would be ignored by TPE and the region tried again.
        optimizer.zero_grad(set_to_none=True)
        last = {spec.metric: worst, "stop_reason": "out_of_memory", "stop_detail": str(exc).splitlines()[0][:300],
                "step": step, "total_steps": total_steps, "micro_batch_size": micro.size}
        session.report(last, None)
    return last
