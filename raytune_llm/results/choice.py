"""Multi-objective results: the Pareto front of a run's healthy trials, and the one export takes from it.

With `search.objectives`, a trial is scored by `search.metric` and each further objective (e.g. `trainable_params`,
to be minimised), all read from the trial's best report by `search.metric` (the report export would use). A trial
is on the front when no other is at least as good in every objective and better in one. Export's pick, stated:
among the front's trials within `search.pareto_tolerance` of the best `search.metric`, the best in the first
further objective (ties: the better `search.metric`); with tolerance 0 that is the best `search.metric`, exactly
as with one objective. Failed trials are never on the front; when no trial is healthy the single-objective
fallback applies.
"""

from __future__ import annotations

from typing import Any

from raytune_llm.core.errors import UserError
from raytune_llm.core.outcomes import better, is_finite
from raytune_llm.results.trials import Choice, TrialRecord, choose
from raytune_llm.schema.experiment import SearchConfig


def _objectives(search: SearchConfig) -> list[tuple[str, str]]:
    return [(search.metric, search.mode), *((o.metric, o.mode) for o in search.objectives)]


def dominates(a: dict[str, Any], b: dict[str, Any], objectives: list[tuple[str, str]]) -> bool:
    """Whether report `a` is at least as good as `b` in every objective and better in one."""
    return (all(not better(b[m], a[m], mode) for m, mode in objectives)
            and any(better(a[m], b[m], mode) for m, mode in objectives))


def pareto_front(trials: list[TrialRecord], search: SearchConfig) -> list[tuple[TrialRecord, dict[str, Any]]]:
    """The non-dominated healthy trials with their best reports, best `search.metric` first."""
    objectives = _objectives(search)
    scored = [(t, r) for t in trials if (r := t.best_row(search.metric, search.mode)) is not None
              and all(is_finite(r.get(m)) for m, _ in objectives)]
    front = [(t, r) for t, r in scored if not any(dominates(o, r, objectives) for _, o in scored)]
    return sorted(front, key=lambda tr: tr[1][search.metric], reverse=search.mode == "max")


def choose_for(trials: list[TrialRecord], search: SearchConfig) -> Choice:
    """The run's pick under its search settings: export, `status` and `search`'s summary all ask this."""
    choice = choose(trials, search.metric, search.mode)
    if choice.fallback or not search.objectives or search.pareto_tolerance == 0:
        return choice
    front = pareto_front(trials, search)
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
