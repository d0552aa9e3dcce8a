"""Every reason a trial can stop for besides its scheduler, in one table: whether it is a failure of the trial's
params or a healthy early stop, what to change when trials stop for it, and the setting that relaxes the rule.

The stability guard's detectors give these reasons (each names its rows, checked when it registers); outcomes, the
live table's notice, `status`, the fallback message of `search` and `export`, and the report all read them here.
Adding a detector that stops for a new reason adds its row. One row is an outcome, not a stop: `ended_at_chance`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StopReason:
    name: str
    failure: bool  # the trial failed (worst value to the searcher) vs. a healthy early stop that keeps its score
    advice: str  # what to change when trials stop for it
    setting: str = ""  # the setting that relaxes the rule ("" where none should: a NaN step is never useful)


STOP_REASONS = {reason.name: reason for reason in (
    StopReason("non_finite", True, "lower the learning rate, set train.grad_clip, or use train.precision: fp32"),
    StopReason("loss_spike", True, "lower the learning rate, add warmup or train.grad_clip, or raise "
               "stability.loss_spike.factor", "stability.loss_spike.factor"),
    StopReason("grad_explosion", True, "set train.grad_clip, lower the learning rate, or raise "
               "stability.grad_explosion.factor", "stability.grad_explosion.factor"),
    StopReason("chance_level", True, "the task may learn slowly: raise stability.chance_level.at_fraction (e.g. "
               "0.5), widen the learning-rate range, or set stability.chance_level.enabled: false",
               "stability.chance_level.at_fraction"),
    StopReason("out_of_memory", True, "set train.micro_batch_size (or auto), train.gradient_checkpointing: true, "
               "train.precision: bf16, or give each trial more of a GPU (resources.gpus_per_worker)"),
    # Not a stop: the outcome of a trial whose chance metric never left chance, however it ended (its budget, the
    # scheduler or a healthy stop); a failure like the guard's (results, status, report, the searcher).
    StopReason("ended_at_chance", True, "no setting learnt the task: widen the learning-rate range (LoRA and "
               "prompt tuning want a higher rate than full fine-tuning), give trials more budget, or check the "
               "labels; raise stability.chance_level.margin only if the chance level itself is wrong"),
    StopReason("plateau", False, "trials stopped improving before their budget ended: raise "
               "stability.plateau.patience to let them run on, or set stability.plateau.enabled: false",
               "stability.plateau.patience"),
)}
FAILURE_REASONS = tuple(name for name, reason in STOP_REASONS.items() if reason.failure)
EARLY_STOP_REASONS = tuple(name for name, reason in STOP_REASONS.items() if not reason.failure)


AT_CHANCE = "ended_at_chance"


def failed_as(reason: str) -> str:
    """How a failed trial failed, for messages ("stopped by the stability guard as loss_spike")."""
    if reason == AT_CHANCE:
        return "ended at chance level"
    if reason == "out_of_memory":
        return "ran out of memory"
    return f"stopped by the stability guard as {reason}" if reason in STOP_REASONS else reason or "failed"


def advice(reason: str) -> str:
    """What to change when trials stop for `reason`."""
    found = STOP_REASONS.get(reason)
    return found.advice if found else "see `raytune-llm status` for each trial's stop reason"
