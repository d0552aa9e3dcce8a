"""What a report shows, read from a run folder without Ray: one `RunView` per run, one `TrialView` per trial.

Compute is counted in worker-seconds: a trial's wall time (Tune's `time_total_s`, start-up included) times its
workers, so a 2-worker trial costs twice a 1-worker one. Outcomes come from `raytune_llm.core.outcomes` through
`results.trials.TrialRecord`, as everywhere else; this module only groups them for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raytune_llm.core.outcomes import better, is_finite, real_value
from raytune_llm.results.choice import Choice, Gain, choice_or_none, gain_over_default
from raytune_llm.results.robustness import read_summary
from raytune_llm.results.trials import TrialRecord, load_trials, outcome_counts, step_trace
from raytune_llm.runs.layout import CONFIG_FILE, open_run, read_info

# The groups a report colours trials by (outcome names map onto them in `group_of`).
GROUPS = ("done", "stopped by scheduler", "stopped by guard", "ended at chance", "failed by guard", "error",
          "not ended")


def group_of(trial: TrialRecord) -> str:
    name = trial.outcome
    if name == "done":
        return "done"
    if name.startswith("unstable:"):
        return "failed by guard"
    if name.startswith("at-chance:"):  # failed, whoever stopped it (`how_stopped` says who)
        return "ended at chance"
    if name.startswith("error"):
        return "error"
    if name == "early-stopped":
        return "stopped by guard" if trial.stop_reason else "stopped by scheduler"
    return "not ended"


def how_stopped(trial: TrialRecord) -> str:
    """Who ended a trial that ended: "budget" (it ran to the end), "scheduler", or "guard (<reason>)"."""
    kind = trial.outcome.removeprefix("at-chance:")
    if kind == "done":
        return "budget"
    return f"guard ({trial.stop_reason})" if trial.stop_reason else "scheduler"


@dataclass
class TrialView:
    record: TrialRecord
    group: str
    compute_s: float  # worker-seconds
    evals: list[tuple[int, float]]  # (step, metric): every evaluation with a finite (real) value
    losses: list[tuple[int, float]]  # (step, train loss) of every optimizer step reported
    grad_norms: list[tuple[int, float]]
    best: float | None  # the best healthy value, None for a failed trial
    rounds: int  # evaluation rounds reported (Tune's training_iteration)

    @property
    def trial_id(self) -> str:
        return self.record.trial_id

    @property
    def params(self) -> dict[str, Any]:
        return self.record.params

    @property
    def stop_step(self) -> int | None:
        return self.record.last.get("step")


@dataclass
class RunView:
    run_dir: Path
    name: str
    metric: str
    mode: str
    num_workers: int
    trials: list[TrialView]
    choice: Choice | None
    chance: float | None  # what a trial that learnt nothing scores on `metric`; None when unknown
    rungs: list[int]  # the scheduler's rungs in evaluation rounds (empty: it has none)
    eval_every: int
    space: list[str]  # the searched params, in the space's order
    robust: dict[str, Any] | None
    counts: dict[str, int] = field(default_factory=dict)
    gain: Gain | None = None  # the pick against the default recipe (a portfolio start's yardstick)

    @property
    def best_trial(self) -> TrialView | None:
        if self.choice is None:
            return None
        return next(t for t in self.trials if t.trial_id == self.choice.trial.trial_id)

    def compute_by(self, key: str) -> dict[str, float]:
        """Worker-seconds by `group` or by a param (e.g. `peft.method`)."""
        out: dict[str, float] = {}
        for t in self.trials:
            k = t.group if key == "group" else str(t.params.get(key, "(not sampled)"))
            out[k] = out.get(k, 0.0) + t.compute_s
        return out

    def timeline(self) -> list[tuple[float, float | None, TrialView, bool]]:
        """Every report in time order as (compute spent so far, best healthy value so far, trial, is its last):
        what best-so-far against compute plots. A failed trial's values never count as best."""
        events = []
        for t in self.trials:
            previous = 0.0
            for i, row in enumerate(t.record.rows):
                spent = float(row.get("time_total_s", 0.0)) * self.num_workers
                events.append((row.get("timestamp", 0), t, spent - previous, row, i == len(t.record.rows) - 1))
                previous = spent
        events.sort(key=lambda e: (e[0], e[1].trial_id))
        out, total, best = [], 0.0, None
        for _, t, cost, row, last in events:
            total += cost
            value = row.get(self.metric)
            if not t.record.failed and is_finite(value) and better(value, best, self.mode):
                best = value
            out.append((total, best, t, last))
        return out


def _rungs(cfg: Any, max_rounds: int) -> list[int]:
    scheduler = cfg.search.scheduler
    if scheduler.name not in ("asha", "hyperband"):
        return []
    top = scheduler.max_t or max_rounds
    rungs, r = [], float(scheduler.grace_period)
    while r < top:
        rungs.append(round(r))
        r *= scheduler.reduction_factor
    return rungs


def _trial_view(t: TrialRecord, metric: str, mode: str, workers: int) -> TrialView:
    evals, losses, grads = [], [], []
    for row in t.rows:
        value = real_value(row, metric)
        if is_finite(value):
            evals.append((int(row.get("step", 0)), float(value)))
        losses += step_trace(row, "step_losses")
        grads += step_trace(row, "step_grad_norms")
    best = t.best_row(metric, mode)
    return TrialView(record=t, group=group_of(t), compute_s=float(t.last.get("time_total_s", 0.0)) * workers,
                     evals=evals, losses=losses, grad_norms=grads, best=best[metric] if best else None,
                     rounds=int(t.last.get("training_iteration", len(t.rows))))


def load_run(run: str | Path) -> RunView:
    run_dir = open_run(run)
    info = read_info(run_dir)
    cfg = info.experiment
    metric, mode = cfg.search.metric, cfg.search.mode
    records = load_trials(run_dir)
    choice = choice_or_none(records, cfg.search)
    trials = [_trial_view(t, metric, mode, cfg.resources.num_workers) for t in records]
    total_steps = max((int(t.last.get("total_steps", 0)) for t in records), default=0)
    eval_every = cfg.train.eval_every
    return RunView(
        run_dir=run_dir, name=cfg.run.name, metric=metric, mode=mode, num_workers=cfg.resources.num_workers,
        trials=trials, choice=choice,
        chance=info.chance_value if info.chance_metric == metric else None,
        rungs=_rungs(cfg, max(1, -(-total_steps // eval_every))), eval_every=eval_every,
        space=list(cfg.search.space), robust=read_summary(run_dir),
        counts=outcome_counts(records), gain=gain_over_default(records, cfg.search, choice),
    )


def rerun_command(run: RunView, trial: TrialView) -> str:
    """The command that trains `trial`'s params again, alone."""
    sets = " ".join(f"--set train.{k}={_yaml_scalar(v)}" for k, v in trial.params.items())
    return f"raytune-llm train {run.run_dir / CONFIG_FILE} {sets}".strip()


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    return str(value)
