"""What a refit made (raytune_llm.search.refit trains it): one run per seed of the chosen config on train + eval,
and which of them export takes. Pure Python: the runs are scored by the caller.

The rule: with several seeds, the median run by the test score when the test split is labelled (else by its final
train loss: the eval rows were trained on, so they judge nothing). With an even count, the worse of the two middle
runs: picking among seeds by the test score must not make the test score it then reports look better than the
typical refit's. Runs the guard stopped as failing take no part; with none left, export falls back to the search's
checkpoint.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raytune_llm.core.outcomes import failure_reason
from raytune_llm.core.stops import AT_CHANCE


@dataclass
class RefitRun:
    """One refit: its seed, its last report, the checkpoint of that report (None when it failed), and the score
    it is ranked by (filled in once scored)."""

    seed: int
    final: dict[str, Any]
    checkpoint: Path | None
    error: str = ""  # the run raised (Train gave up on it): why, in one line
    stored: str = ""  # where the checkpoint is kept in the run's storage (`checkpoint` may be a local copy of it)
    score: float | None = None

    @property
    def failure(self) -> str:
        """Why this refit cannot be exported; "" when it can."""
        if self.error:
            return f"error: {self.error}"
        # What failed means for a trial (core.outcomes), asked of the refit's last report.
        reason = failure_reason("TERMINATED", self.final)
        if reason == AT_CHANCE:
            return f"ended at chance level at step {self.final.get('step')}"
        if reason:
            return f"{reason} at step {self.final.get('step')} ({self.final.get('stop_detail', '')})"
        if self.checkpoint is None:
            return f"no checkpoint at step {self.final.get('step')}"
        return ""


@dataclass
class Refit:
    """The refit export takes, and what metrics.json says about it."""

    runs: list[RefitRun]
    chosen: RefitRun
    rows: int  # the rows it trained on: train + eval
    steps_rule: str  # full | best
    by: str = ""  # what the seeds were ranked by (test_<metric> or train_loss); "" with one seed
    mode: str = "max"
    search_checkpoint: str = ""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows, "steps": self.chosen.final.get("step"), "steps_rule": self.steps_rule,
                "seeds": [r.seed for r in self.runs], "chosen_seed": self.chosen.seed,
                "checkpoint": self.chosen.stored or str(self.chosen.checkpoint),
                "search_checkpoint": self.search_checkpoint, "spread": self.spread(),
                "failed_seeds": {str(r.seed): r.failure for r in self.runs if r.failure}}

    def spread(self) -> dict[str, Any] | None:
        """How far the seeds' scores are apart (None with one seed: nothing to compare)."""
        scored = {r.seed: r.score for r in self.runs if r.score is not None}
        if len(self.runs) < 2 or not scored:
            return None
        values = list(scored.values())
        return {"by": self.by, "mode": self.mode, "values": {str(s): v for s, v in scored.items()},
                "median": statistics.median(values), "min": min(values), "max": max(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def median_run(runs: list[RefitRun], mode: str) -> RefitRun | None:
    """The median of the scored, healthy runs by `mode` (the worse middle one of an even count); None when no
    run can be exported. A single healthy run needs no score."""
    healthy = [r for r in runs if not r.failure]
    if len(healthy) == 1:
        return healthy[0]
    ranked = sorted((r for r in healthy if r.score is not None), key=lambda r: r.score, reverse=mode == "max")
    return ranked[len(ranked) // 2] if ranked else None
