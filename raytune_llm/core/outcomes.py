"""What became of a trial, and which of two values is better: decided here and nowhere else.

Results, pruning, the live table, `robust`, `export` and `train` all ask this module, so that a trial cannot be
a failure in one place and exportable in another. Pure Python: nothing heavy is imported.

Outcomes:
- `done`: ran its whole budget.
- `early-stopped`: stopped while healthy (by the scheduler, a time budget, or the guard's `plateau` rule):
  keeps its real score and its checkpoints, and can be the best.
- `unstable:<reason>`: stopped by the stability guard as failing (a failure in `core.stops`), or out of memory in a
  single-worker trial (`out_of_memory`: a failure of its params too). The searcher was told the worst value; the
  real one is kept beside it (`real_<metric>`) for the fallback when nothing healthy exists.
- `at-chance:done` / `at-chance:early-stopped`: it ended (by its budget, the scheduler or a healthy stop) with its
  chance metric never above chance level (the trial's `at_chance` report, the chance-level rule's "at chance"
  applied to its best value so far): a failure like the guard's, whoever stopped it (a run that learnt nothing is
  not a result, and a constant prediction's accuracy on imbalanced labels can look like one). Its reports keep
  their real values.
- `error` / `error:oom`: the trial raised (a multi-worker trial out of memory: one rank cannot report alone).
- `running` / `pending` / `paused`: not ended yet.
"""

from __future__ import annotations

import math
from typing import Any

from raytune_llm.core.stops import AT_CHANCE, EARLY_STOP_REASONS, FAILURE_REASONS

# Beside the worst value a failed trial reports, its real value of the objective: REAL_PREFIX + metric.
REAL_PREFIX = "real_"

# Known bounds of metrics, so a stopped trial reports a natural worst value (0 accuracy) rather than a
# huge sentinel that would distort plots.
_BOUNDED = {
    "accuracy": (0.0, 1.0), "macro_f1": (0.0, 1.0), "f1": (0.0, 1.0), "precision": (0.0, 1.0), "recall": (0.0, 1.0),
    "exact_match": (0.0, 1.0), "pearson": (-1.0, 1.0), "spearman": (-1.0, 1.0), "mcc": (-1.0, 1.0),
    "bleu": (0.0, 1.0), "rouge_l": (0.0, 1.0),
}
_UNBOUNDED_WORST = 1e9


def worst_value(metric: str, mode: str) -> float:
    """The worst finite value of `metric` under `mode` ("max" or "min")."""
    name = metric.removeprefix("eval_").removeprefix("test_")
    name = next((k for k in ("precision", "recall", "f1") if name.startswith(k + "_")), name)  # per class
    if name in _BOUNDED:
        low, high = _BOUNDED[name]
        return low if mode == "max" else high
    return -_UNBOUNDED_WORST if mode == "max" else _UNBOUNDED_WORST


def is_failure(stop_reason: str) -> bool:
    return stop_reason in FAILURE_REASONS


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def better(a: float, b: float | None, mode: str) -> bool:
    """Whether `a` is strictly better than `b` under `mode` ("max" or "min"); anything beats None."""
    return b is None or (a > b if mode == "max" else a < b)


def best_of(values: list[Any], key: Any, mode: str) -> Any:
    """The item with the best key under `mode`; the first of equals."""
    best, best_key = None, None
    for item in values:
        k = key(item)
        if better(k, best_key, mode):
            best, best_key = item, k
    return best


def real_value(row: dict[str, Any], metric: str) -> Any:
    """The value a report really scored: the real one for a failure report, else the reported one."""
    return row.get(REAL_PREFIX + metric, row.get(metric))


def is_oom(error_text: str) -> bool:
    return "OutOfMemoryError" in error_text or "out of memory" in error_text


def outcome(status: str, last: dict[str, Any], error_text: str = "") -> str:
    """The outcome of a trial from Tune's status and its last report (see the module doc)."""
    if status == "ERROR":
        return "error:oom" if is_oom(error_text) else "error"
    reason = str(last.get("stop_reason") or "")
    if is_failure(reason):
        return f"unstable:{reason}"
    if reason:
        kind = "early-stopped"
    elif status == "TERMINATED":
        kind = "done" if last and last.get("step") == last.get("total_steps") else "early-stopped"
    else:
        return status.lower()
    return f"at-chance:{kind}" if ended_at_chance(last) else kind


def ended_at_chance(last: dict[str, Any]) -> bool:
    """Whether a trial whose last report is `last` never left chance level (tasks without one: never)."""
    return last.get("at_chance") is True


def is_failed_outcome(name: str) -> bool:
    return name.startswith(("unstable:", "error", "at-chance:"))


def failure_reason(status: str, last: dict[str, Any], error_text: str = "") -> str:
    """Why a trial failed: its guard stop reason, `ended_at_chance`, or "error"; "" if it did not fail."""
    name = outcome(status, last, error_text)
    if name.startswith("unstable:"):
        return name.removeprefix("unstable:")
    if name.startswith("at-chance:"):
        return AT_CHANCE
    return "error" if name.startswith("error") else ""


def searcher_verdict(errored: bool, last: dict[str, Any], metric: str) -> str:
    """What the searcher is told about an ended trial:
    - "complete": its value is a finished trial's (it ran its budget, or the guard's `plateau` rule ended it);
    - "pruned": stopped part-way by the scheduler or a time budget while healthy: the searcher ranks it by its
      intermediate values, not as if a partial score were final;
    - "infeasible": the guard stopped it as failing, or it ended at chance level: complete with the metric's worst
      finite value (a FAIL would be ignored by TPE, and a region that only fails would keep attracting proposals)
      and marked infeasible, so that every sampler ranks it below every healthy trial (TPE's good examples are
      complete, then pruned, then infeasible trials) and it is never on the Pareto front;
    - "fail": it raised, or never reported a finite value."""
    if errored or not is_finite(last.get(metric)):
        return "fail"
    if is_failure(str(last.get("stop_reason") or "")) or ended_at_chance(last):
        return "infeasible"
    kind = outcome("TERMINATED", last)
    if kind == "early-stopped" and last.get("stop_reason") not in EARLY_STOP_REASONS:
        return "pruned"
    return "complete"


class BestSoFar:
    """Each trial's best value so far as export counts it (`results.trials.TrialRecord.best_row`): the best finite value
    of its reports, healthy early stops included; a trial the guard stopped as failing has none from then on, and
    one whose latest report says it is (still) at chance level has none while it is.
    For the callbacks that show a best while the search runs (the live table, TensorBoard, MLflow)."""

    def __init__(self, metric: str, mode: str) -> None:
        self.metric, self.mode = metric, mode
        self.values: dict[str, float] = {}
        self.failed: set[str] = set()
        self.at_chance: set[str] = set()

    def add(self, trial_id: str, result: dict[str, Any]) -> None:
        value = result.get(self.metric)
        if is_failure(str(result.get("stop_reason") or "")):
            self.failed.add(trial_id)
            self.values.pop(trial_id, None)
        elif trial_id not in self.failed and is_finite(value) and better(value, self.values.get(trial_id), self.mode):
            self.values[trial_id] = value
        (self.at_chance.add if ended_at_chance(result) else self.at_chance.discard)(trial_id)

    def get(self, trial_id: str) -> float | None:
        return None if trial_id in self.at_chance else self.values.get(trial_id)
