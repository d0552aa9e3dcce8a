"""A run directory's trials, read without Ray: each trial's params, status, reports and outcome. Which of them
the results point to is raytune_llm.results.choice."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raytune_llm.core.errors import UserError
from raytune_llm.core.outcomes import best_of, failure_reason, is_failed_outcome, is_finite, outcome, real_value
from raytune_llm.core.stops import FAILURE_REASONS
from raytune_llm.core.yardstick import RECIPE_KEY, recipe_of


@dataclass
class TrialRecord:
    trial_id: str
    params: dict[str, Any]
    status: str  # Tune's: PENDING, RUNNING, TERMINATED, ERROR, PAUSED
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""  # the last line of the trial's error, for tables
    error_text: str = ""
    recipe: str | None = None  # the portfolio recipe it started from (core.yardstick); None: the searcher's own

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}

    @property
    def stop_reason(self) -> str:
        return str(self.last.get("stop_reason") or "")

    @property
    def outcome(self) -> str:
        return outcome(self.status, self.last, self.error_text)

    @property
    def failed(self) -> bool:
        return is_failed_outcome(self.outcome)

    @property
    def failure(self) -> str:
        """Why it failed (a guard stop reason, `ended_at_chance`, "error"); "" if it did not."""
        return failure_reason(self.status, self.last, self.error_text)

    def best_row(self, metric: str, mode: str) -> dict[str, Any] | None:
        """The best report with a finite metric, from a trial that did not fail (a healthy early stop counts); of
        equal ones the later, whose checkpoint is the one Ray keeps (its checkpoint manager ranks a later checkpoint
        above an earlier one of the same score, and with keep_checkpoints: 1 deletes the earlier)."""
        if self.failed:
            return None
        return best_of([r for r in reversed(self.rows) if is_finite(r.get(metric))], lambda r: r[metric], mode)

    def fallback_row(self, metric: str, mode: str) -> dict[str, Any] | None:
        """For a trial the guard stopped as failing, or that ended at chance level: its best real report (see
        `core.outcomes.real_value`); of equal ones the later, as `best_row`: Ray keeps the best healthy report's
        checkpoint and the latest (the stop's)."""
        if self.failure not in FAILURE_REASONS:  # healthy, or raised
            return None
        return best_of([r for r in reversed(self.rows) if is_finite(real_value(r, metric))],
                       lambda r: real_value(r, metric), mode)


def step_trace(row: dict[str, Any], key: str) -> list[tuple[int, float]]:
    """(optimizer step, value) of each step in a report's trace (`step_losses`, `step_grad_norms`): the steps
    since the previous report, ending at `trace_last_step` (a step the guard stopped, which did not complete) or
    else at the report's `step`. Non-finite values are left out."""
    values = row.get(key) or []
    end = int(row.get("trace_last_step", row.get("step", 0)))
    return [(end - len(values) + 1 + i, v) for i, v in enumerate(values) if is_finite(v)]


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a killed driver: keep what came before it
    return rows


def _read_state(run_dir: Path) -> dict[str, Any]:
    """The newest experiment state Tune saved. Tune rewrites the file in place while a search runs, so a read
    can catch it empty or half-written: try again briefly, then fall back to an older state file."""
    states = sorted(run_dir.glob("experiment_state-*.json"), reverse=True)
    if not states:
        raise UserError(f"{run_dir}: no trials recorded yet (no experiment_state-*.json)")
    for state_file in states:
        for _ in range(10):
            try:
                return json.loads(state_file.read_text())
            except (json.JSONDecodeError, OSError):
                time.sleep(0.1)
    raise UserError(f"{run_dir}: the search state ({states[0].name}) cannot be read; is the disk full?")


def _params(meta: dict[str, Any]) -> dict[str, Any]:
    """A trial's searched params as they are now: what the searcher proposed, with the values Tune holds for them
    since (PBT changes a trial's config when it copies another trial; for other schedulers they are the same)."""
    config = meta.get("config") or {}
    evaluated = meta.get("evaluated_params") or config
    return {name: config.get(name, value) for name, value in evaluated.items() if name != RECIPE_KEY}


def load_trials(run_dir: Path) -> list[TrialRecord]:
    state = _read_state(run_dir)
    trials = []
    for meta_json, runtime_json in state["trial_data"]:
        meta, runtime = json.loads(meta_json), json.loads(runtime_json)
        trial_dir = run_dir / meta["relative_logdir"]
        error = error_text = ""
        if runtime.get("error_filename"):
            err_file = trial_dir / runtime["error_filename"]
            if err_file.is_file():
                error_text = err_file.read_text()
                lines = [ln for ln in error_text.splitlines() if ln.strip()]
                error = lines[-1] if lines else "see " + str(err_file)
        trials.append(
            TrialRecord(
                trial_id=meta["trial_id"], params=_params(meta),
                status=meta["status"], rows=_read_rows(trial_dir / "result.json"), error=error,
                error_text=error_text, recipe=recipe_of(meta.get("config")),
            )
        )
    return trials


def outcome_counts(trials: list[TrialRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.outcome] = counts.get(t.outcome, 0) + 1
    return counts
