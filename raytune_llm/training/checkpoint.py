"""A training run's checkpoint: what the loop writes with each evaluation report and reads back to continue.

    model/               the trainable weights (the adapter only, for PEFT methods), safetensors
    trainer_state.pt     optimizer and scheduler state, the step, fp16's loss scale, and what the stability guard
                         had seen (each detector's state, the best chance metric)
    eval_predictions.json  the evaluation's predictions (export checks the exported model against them)
    metrics.json         the report the checkpoint was made with
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from raytune_llm.core.storage import STAGING_PREFIX
from raytune_llm.models.build import save_trainable, unwrap
from raytune_llm.schema import PeftMethod
from raytune_llm.training.sharding import full_state, is_sharded, load_full_state

if TYPE_CHECKING:
    from raytune_llm.training.precision import LossScaler
    from raytune_llm.training.spec import Session
    from raytune_llm.training.stability import StabilityGuard

STATE_FILE = "trainer_state.pt"
PREDICTIONS_FILE = "eval_predictions.json"


def report_with_checkpoint(session: Session, metrics: dict[str, Any], model: torch.nn.Module,
                           optimizer: torch.optim.Optimizer, scheduler: Any, step: int, preds: list[int],
                           scaler: LossScaler | None = None, guard: StabilityGuard | None = None) -> None:
    """Report `metrics` with a checkpoint of this moment (rank 0's; every rank reports, because a report is also
    a barrier across workers). A sharded model's full state is gathered first, by every rank."""
    model_state, optimizer_state = full_state(model, optimizer) if is_sharded(model) else (None, None)
    if session.rank != 0:
        session.report(metrics, None)
        return
    # A session may name where to stage (beside the checkpoint's final place, so that moving it there is a rename).
    with tempfile.TemporaryDirectory(prefix=STAGING_PREFIX, dir=getattr(session, "staging_dir", None)) as tmp:
        out = Path(tmp)
        save_trainable(model, out / "model", model_state)
        torch.save({"optimizer": optimizer_state or optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "step": step, "sharded": model_state is not None,
                    "loss_scaler": scaler.state_dict() if scaler else {},
                    "guard": guard.state_dict() if guard else {}}, out / STATE_FILE)
        (out / PREDICTIONS_FILE).write_text(json.dumps(preds))
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        session.report(metrics, out)


def load_state(ckpt: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
               method: PeftMethod, scaler: LossScaler | None = None, guard: StabilityGuard | None = None) -> int:
    """Load a checkpoint into a freshly built run; returns the step to continue from."""
    from safetensors.torch import load_file, load_model

    state = torch.load(ckpt / STATE_FILE, weights_only=True)
    # The optimizer's moments and the step come from the checkpoint; its hyperparameters (lr, weight decay, betas)
    # and the schedule stay this run's: the same on a plain resume, and PBT's perturbed values when this trial
    # continues from another trial's checkpoint.
    chosen = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    if is_sharded(model):  # a full state (any checkpoint: sharded runs gather theirs), sharded again here
        if not state.get("sharded"):
            raise ValueError(f"{ckpt}: a checkpoint of a run with resources.strategy: ddp cannot continue under fsdp")
        load_full_state(model, optimizer, load_file(str(ckpt / "model" / "model.safetensors")), state["optimizer"])
    else:
        if state.get("sharded"):
            raise ValueError(f"{ckpt}: a checkpoint of a run with resources.strategy: fsdp cannot continue under ddp")
        if method == PeftMethod.full:
            load_model(unwrap(model), str(ckpt / "model" / "model.safetensors"))
        else:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(model, load_file(str(ckpt / "model" / "adapter_model.safetensors")))
        optimizer.load_state_dict(state["optimizer"])
    step = int(state["step"])
    # The schedule advanced once per applied update, which under fp16 is fewer than the steps (skipped ones).
    updates = int(state["scheduler"].get("last_epoch", step))
    for group, values, base, factor in zip(optimizer.param_groups, chosen, scheduler.base_lrs, scheduler.lr_lambdas,
                                           strict=True):
        group.update(values)
        group["lr"] = base * factor(updates)
    scheduler.last_epoch = updates
    if scaler is not None:
        scaler.load_state_dict(state.get("loss_scaler") or {})
    if guard is not None:  # a checkpoint from before the guard's state was saved: it starts afresh
        guard.load_state_dict(state.get("guard") or {})
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() reports
    return step
