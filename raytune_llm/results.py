"""Read a run directory's trials without Ray: table rows, outcomes, and the best finite result."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raytune_llm.errors import UserError


@dataclass
class TrialRecord:
    trial_id: str
    params: dict[str, Any]
    status: str  # Tune's: PENDING, RUNNING, TERMINATED, ERROR, PAUSED
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""  # the last line of the trial's error, for tables
    error_text: str = ""

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}

    @property
    def stop_reason(self) -> str:
        return str(self.last.get("stop_reason") or "")

    @property
    def outcome(self) -> str:
        """done | early-stopped (scheduler) | unstable:<reason> | error | running | pending."""
        if self.status == "ERROR":
            oom = "OutOfMemoryError" in self.error_text or "out of memory" in self.error_text
            return "error:oom" if oom else "error"
        if self.stop_reason:
            return f"unstable:{self.stop_reason}"
        if self.status == "TERMINATED":
            last = self.last
            return "done" if last and last.get("step") == last.get("total_steps") else "early-stopped"
        return self.status.lower()

    def best_row(self, metric: str, mode: str) -> dict[str, Any] | None:
        """The best report with a finite metric, from a trial that was not stopped as unstable."""
        if self.stop_reason:
            return None
        finite = [r for r in self.rows if is_finite(r.get(metric))]
        if not finite:
            return None
        pick = max if mode == "max" else min
        return pick(finite, key=lambda r: r[metric])


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
                trial_id=meta["trial_id"], params=meta.get("evaluated_params") or meta.get("config") or {},
                status=meta["status"], rows=_read_rows(trial_dir / "result.json"), error=error,
                error_text=error_text,
            )
        )
    return trials


def best_result(trials: list[TrialRecord], metric: str, mode: str) -> tuple[TrialRecord, dict[str, Any]]:
    """The best finite report over all trials; unstable and failed trials never win."""
    candidates = [(t, r) for t in trials if t.status != "ERROR" and (r := t.best_row(metric, mode)) is not None]
    if not candidates:
        raise UserError(f"no trial reported a finite {metric!r}; see `raytune-llm status` for why")
    pick = max if mode == "max" else min
    return pick(candidates, key=lambda tr: tr[1][metric])


def outcome_counts(trials: list[TrialRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.outcome] = counts.get(t.outcome, 0) + 1
    return counts
