"""The pick: which trial, and which of its reports, a run's results point to. Decided here and nowhere else: export
asks `pick`; `status`, the report and `search`'s summary ask `choose_for` (`choice_or_none`); `robust` asks
`top_configs` for what to re-run; `train` asks `best_report`; and the checkpoint pruning asks `beaten` ("could the
pick still be this trial?") instead of restating the rule.

The rule, stated:
- A trial is scored by its best report with a finite `search.metric`; a failed trial (the guard stopped it as
  failing, it ended at chance level, or it raised) never wins while a healthy one exists. Among equals the earlier
  trial wins.
- With no healthy trial, the pick falls back to the failed trial (guard-stopped or ended at chance) with the best
  real score (its `real_<metric>`, the value the searcher was not told), flagged `fallback`.
- With `search.objectives`, a trial is also scored by each further objective (e.g. `trainable_params`, minimised),
  read from that same best report. A trial is on the Pareto front when no other healthy trial is at least as good
  in every objective and better in one. Among the front's trials within `search.pareto_tolerance` of the best
  `search.metric`, the pick is the best in the first further objective (ties: the better `search.metric`); with
  tolerance 0 that is the best `search.metric`, exactly as with one objective.
- `export --by robust`: the config `robust` ranked first, and its best seed run by the same rule.
- With a portfolio start, the pick is also reported against the default recipe's trial (the yardstick, which runs
  to its full budget): `gain_over_default`. It takes part in the pick like any trial, so when nothing beats it, it
  is the pick (as the earlier trial it wins ties).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raytune_llm.core.errors import UserError
from raytune_llm.core.outcomes import best_of, better, is_failure, is_finite, real_value
from raytune_llm.core.stops import failed_as
from raytune_llm.core.yardstick import DEFAULT_RECIPE
from raytune_llm.results.robustness import ROBUST_DIR, SUMMARY_FILE, read_summary, run_params
from raytune_llm.results.trials import TrialRecord, load_trials
from raytune_llm.schema import SearchConfig


@dataclass
class Choice:
    """The trial a run's results point to. `fallback`: no healthy trial exists, so this is the best failed trial
    that has a checkpoint (guard-stopped or ended at chance), by its real score (why it failed: `trial.failure`)."""

    trial: TrialRecord
    row: dict[str, Any]
    fallback: bool = False

    def score(self, metric: str) -> float:
        return real_value(self.row, metric)


def best_result(trials: list[TrialRecord], metric: str, mode: str) -> tuple[TrialRecord, dict[str, Any]]:
    """The best finite report over all trials; failed trials never win."""
    candidates = [(t, r) for t in trials if (r := t.best_row(metric, mode)) is not None]
    if not candidates:
        raise UserError(f"no healthy trial reported a finite {metric!r}; see `raytune-llm status` for why")
    return best_of(candidates, lambda tr: tr[1][metric], mode)


def choose(trials: list[TrialRecord], metric: str, mode: str) -> Choice:
    """The best healthy trial or, when there is none, the best guard-stopped or at-chance one. Raises when neither
    exists."""
    try:
        return Choice(*best_result(trials, metric, mode))
    except UserError:
        candidates = [(t, r) for t in trials if (r := t.fallback_row(metric, mode)) is not None]
        if not candidates:
            raise
        trial, row = best_of(candidates, lambda tr: real_value(tr[1], metric), mode)
        return Choice(trial, row, fallback=True)


def objectives(search: SearchConfig) -> list[tuple[str, str]]:
    """(metric, mode) of `search.metric` and each further objective."""
    return [(search.metric, search.mode), *((o.metric, o.mode) for o in search.objectives)]


def dominates(a: dict[str, Any], b: dict[str, Any], objectives: list[tuple[str, str]]) -> bool:
    """Whether report `a` is at least as good as `b` in every objective and better in one."""
    return (all(not better(b[m], a[m], mode) for m, mode in objectives)
            and any(better(a[m], b[m], mode) for m, mode in objectives))


def _scored(trial: TrialRecord, search: SearchConfig) -> dict[str, Any] | None:
    """The trial's best report when every objective in it is finite (what the front is made of), else None."""
    row = trial.best_row(search.metric, search.mode)
    return row if row is not None and all(is_finite(row.get(m)) for m, _ in objectives(search)) else None


def pareto_front(trials: list[TrialRecord], search: SearchConfig) -> list[tuple[TrialRecord, dict[str, Any]]]:
    """The non-dominated healthy trials with their best reports, best `search.metric` first."""
    scored = [(t, r) for t in trials if (r := _scored(t, search)) is not None]
    front = [(t, r) for t, r in scored if not any(dominates(o, r, objectives(search)) for _, o in scored)]
    return sorted(front, key=lambda tr: tr[1][search.metric], reverse=search.mode == "max")


def choose_for(trials: list[TrialRecord], search: SearchConfig) -> Choice:
    """The run's pick under its search settings (the rule in the module doc)."""
    choice = choose(trials, search.metric, search.mode)
    if choice.fallback or not search.objectives or search.pareto_tolerance == 0:
        return choice
    front = pareto_front(trials, search)
    if not front:  # no healthy trial reported every objective: nothing to trade off
        return choice
    best = front[0][1][search.metric]
    near = [(t, r) for t, r in front if abs(r[search.metric] - best) <= search.pareto_tolerance]
    second, mode = search.objectives[0].metric, search.objectives[0].mode
    picked = near[0]
    for t, r in near[1:]:
        if better(r[second], picked[1][second], mode):
            picked = (t, r)
    return Choice(*picked)


def choice_or_none(trials: list[TrialRecord], search: SearchConfig) -> Choice | None:
    """`choose_for`, or None when no trial has anything to pick (for displays that show a run either way)."""
    try:
        return choose_for(trials, search)
    except UserError:
        return None


def robust_choice(run_dir: Path) -> tuple[list[TrialRecord], TrialRecord, dict[str, Any]]:
    """For `export --by robust`: the robust winner's seed runs, its best seed run and that run's best report."""
    summary = read_summary(run_dir)
    if summary is None:
        if list((run_dir / ROBUST_DIR).glob("experiment_state-*.json")):
            raise UserError(f"the robustness runs in {run_dir / ROBUST_DIR} did not finish (no {SUMMARY_FILE}); run "
                            f"`raytune-llm robust {run_dir}` again to continue them")
        raise UserError(f"no robustness results in {run_dir}; run `raytune-llm robust {run_dir}` first")
    if not summary["configs"]:
        raise UserError(f"{run_dir / ROBUST_DIR / SUMMARY_FILE} lists no configs; re-run "
                        f"`raytune-llm robust {run_dir}`")
    winner = summary["configs"][0]
    runs = [t for t in load_trials(run_dir / ROBUST_DIR) if t.trial_id in winner["runs"]]
    choice = choose(runs, summary["metric"], summary["mode"])
    return runs, choice.trial, choice.row


def pick(run_dir: Path, trials: list[TrialRecord], search: SearchConfig, by: str = "score",
         trial_id: str | None = None) -> tuple[Choice, dict[str, Any]]:
    """What export exports, and the params it was trained with: the run's pick (`by="score"`), the robust winner
    (`by="robust"`), or the named trial's best report."""
    if by == "robust":
        _, trial, row = robust_choice(run_dir)
        return Choice(trial, row, fallback=trial.failed), run_params(trial)
    if trial_id:
        named = [t for t in trials if t.trial_id == trial_id]
        if not named:
            raise UserError(f"--trial {trial_id}: no such trial; `raytune-llm status {run_dir}` lists them")
        choice = choose(named, search.metric, search.mode)
    else:
        choice = choose_for(trials, search)
    return choice, choice.trial.params


def top_configs(trials: list[TrialRecord], metric: str, mode: str, k: int) -> list[TrialRecord]:
    """What `robust` re-runs: the K trials with the best finite reports (failed trials excluded), best first; when
    no healthy trial exists, the K failed trials (guard-stopped or at chance) with the best real reports (whether
    they were stopped wrongly is exactly what re-running them with other seeds tells)."""
    ranked = [(t, r[metric]) for t in trials if (r := t.best_row(metric, mode))]
    if not ranked:
        ranked = [(t, real_value(r, metric)) for t in trials if (r := t.fallback_row(metric, mode))]
    ranked.sort(key=lambda tr: tr[1], reverse=mode == "max")
    return [t for t, _ in ranked[:k]]


def best_report(rows: Sequence[dict[str, Any]], metric: str, mode: str) -> dict[str, Any]:
    """`train`'s pick among one run's reports with a checkpoint: the best healthy one (a run that diverged late
    still has its good checkpoints; with one run there is no other trial to prefer), else the best real score of
    those the guard stopped."""
    healthy = [r for r in rows if not is_failure(str(r.get("stop_reason") or ""))]
    return best_of(healthy or list(rows), lambda r: real_value(r, metric), mode)


def beaten(candidate: str, ended: list[TrialRecord], search: SearchConfig) -> bool:
    """Whether the pick can never be the trial `candidate`, whatever trials are still to come. `ended`: the trials
    that ended healthy, the candidate among them, in trial order (the earlier of equals wins). Running trials prove
    nothing: the guard may yet stop one as failing, and the pick would fall back to the ones that ended."""
    metric, mode = search.metric, search.mode
    position = next((i for i, t in enumerate(ended) if t.trial_id == candidate), None)
    if position is None:
        raise ValueError(f"trial {candidate} has not ended healthy: whether it is beaten cannot be told")
    mine = ended[position].best_row(metric, mode)
    if mine is None:
        return True
    others = [(i, r) for i, t in enumerate(ended) if i != position and (r := t.best_row(metric, mode)) is not None]
    scored = _scored(ended[position], search)
    if search.objectives and search.pareto_tolerance and scored is not None:
        # Later trials can only raise the best metric and add to the front: a trial dominated by an ended one, or
        # more than the tolerance below one, can never be the pick; any other may be.
        rivals = [r for _, r in others if all(is_finite(r.get(m)) for m, _ in objectives(search))]
        return any(dominates(r, scored, objectives(search)) or (better(r[metric], mine[metric], mode) and abs(
            r[metric] - mine[metric]) > search.pareto_tolerance) for r in rivals)
    return any(better(r[metric], mine[metric], mode) or (r[metric] == mine[metric] and i < position)
               for i, r in others)


@dataclass
class Gain:
    """The pick against the default recipe's trial. `default`: the yardstick's best healthy score (None when it
    failed, or has no report yet); `gain`: pick minus default in the metric's own units."""

    metric: str
    mode: str
    yardstick: TrialRecord
    default: float | None
    pick: float
    picked_itself: bool

    @property
    def gain(self) -> float | None:
        return None if self.default is None else self.pick - self.default

    def line(self) -> str:
        """One line for status, the report and export."""
        y = self.yardstick
        if self.picked_itself:
            return (f"the pick is the default recipe (trial {y.trial_id}, {self.metric}={self.pick:.4g}): no trial "
                    "beat it")
        if self.default is None:
            why = failed_as(y.failure) if y.failed else f"has no {self.metric} yet ({y.status.lower()})"
            return f"the default recipe (trial {y.trial_id}) {why}; nothing to compare the pick with"
        word = "over" if self.mode == "max" else "vs"
        return (f"{self.gain:+.4g} {self.metric} {word} the default recipe (trial {y.trial_id}: "
                f"{self.default:.4g} -> {self.pick:.4g})")

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "default_trial": self.yardstick.trial_id, "default": self.default,
                "pick": self.pick, "gain": self.gain, "pick_is_default": self.picked_itself,
                "default_failure": self.yardstick.failure or None}


def yardstick(trials: list[TrialRecord]) -> TrialRecord | None:
    """The trial that ran the default recipe (a portfolio start's first), or None."""
    return next((t for t in trials if t.recipe == DEFAULT_RECIPE), None)


def gain_over_default(trials: list[TrialRecord], search: SearchConfig, choice: Choice | None) -> Gain | None:
    """The pick against the default recipe, or None without a pick or without a default recipe's trial."""
    y = yardstick(trials)
    if y is None or choice is None:
        return None
    row = y.best_row(search.metric, search.mode)
    return Gain(search.metric, search.mode, y, row[search.metric] if row else None, choice.score(search.metric),
                choice.trial.trial_id == y.trial_id)
