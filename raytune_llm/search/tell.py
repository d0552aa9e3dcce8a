"""The searchers' adapter to Ray Tune: Tune's OptunaSearch, telling Optuna the truth about each ended trial.

Ray's OptunaSearch tells COMPLETE with the last reported value whenever one exists, so a trial ASHA stopped after
one round counts as if its one-round score were final; it tells FAIL only for an error without a value. Here the
verdict comes from `core.outcomes.searcher_verdict` (the one place that decides outcomes): pruned trials are PRUNED
with the intermediate values already reported to Optuna at each evaluation, failures (a guard stop, or a run that
ended at chance level) COMPLETE with the metric's worst finite value and an infeasible constraint (Optuna's
`Trial.set_constraint`: TPE, GP and NSGA-II rank them below every feasible trial, and the study's Pareto front
leaves them out), errors FAIL.

A search's start points (raytune_llm.recipes.start_points: the portfolio's recipes, the user's points) are
enqueued in the study in order, each with its name as a user attribute, so that the sampler models them like any
other trial and the trial that runs one carries its name in its Tune config (core.yardstick.RECIPE_KEY).
"""

from __future__ import annotations

import functools
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from raytune_llm.core.outcomes import is_finite, searcher_verdict, worst_value
from raytune_llm.core.yardstick import RECIPE_KEY
from raytune_llm.recipes import Family, Recipe, effective_start, start_points
from raytune_llm.schema import SearchConfig, TrainConfig
from raytune_llm.schema.space import searcher_names, suggest
from raytune_llm.searchers.base import Plan

# The constraint a failed trial (core.outcomes' "infeasible") violates (Optuna: > 0 is infeasible).
FAILED = "raytune_llm.failed"


class TruthfulOptunaSearch(OptunaSearch):
    def __init__(self, *args: Any, params: list[str], start: list[tuple[str, dict[str, Any]]] | None = None,
                 **kwargs: Any) -> None:
        self.start = start or []  # (name, point by the searcher's names): enqueued when the study is set up
        super().__init__(*args, **kwargs)
        self.params = params

    def _setup_study(self, mode: str | list[str]) -> None:
        super()._setup_study(mode)
        if self._ot_study.trials:  # a study loaded from its journal already holds its start
            return
        for name, point in self.start:
            self._ot_study.enqueue_trial(point, user_attrs={RECIPE_KEY: name})

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        # Tune's config holds the searcher's own names too; a `by:` range's (e.g. optimizer.lr[peft.method=lora])
        # is not a setting: keep the params by their train: paths.
        config = super().suggest(trial_id)
        if not isinstance(config, dict):
            return config
        config = {k: v for k, v in config.items() if k in self.params}
        if (recipe := self._ot_trials[trial_id].user_attrs.get(RECIPE_KEY)) is not None:
            config[RECIPE_KEY] = recipe
        return config

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        from optuna.trial import TrialState

        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        verdict = searcher_verdict(error, result or {}, metrics[0])
        state = {"complete": TrialState.COMPLETE, "infeasible": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
                 "fail": TrialState.FAIL}[verdict]
        value = None
        if state == TrialState.COMPLETE:
            values = [result.get(m) for m in metrics]
            if verdict == "infeasible":  # a run that ended at chance reports its real value: not for a searcher
                # ... and a failed one may not have measured its further objectives (a compression trial's
                # latency): every objective at its worst, so that it is still told as infeasible, not dropped
                modes = self.mode if isinstance(self.mode, list) else [self.mode]
                values = [worst_value(metrics[0], modes[0]),
                          *(v if is_finite(v) else worst_value(m, md) for v, m, md in zip(values[1:], metrics[1:],
                                                                                      modes[1:]))]
            if not all(is_finite(v) for v in values):  # a further objective never reported: not a result
                state = TrialState.FAIL
            else:
                value = values if len(values) > 1 else values[0]
        trial = self._ot_trials[trial_id]
        # Every told trial carries the constraint (0: feasible), so that samplers that model constraints see all.
        trial.set_constraint(FAILED, 1.0 if verdict == "infeasible" else 0.0)
        self._ot_study.tell(trial, value, state=state)
        self._completed_trials.add(trial_id)
        return None


def build_search(search: SearchConfig, concurrent: int, storage: Any = None, study_name: str | None = None, *,
                 train: TrainConfig | None = None, family: Family = "encoder",
                 portfolio: list[Recipe] | None = None) -> TruthfulOptunaSearch:
    """The search's searcher over its define-by-run space, its start (`search.start`: the portfolio's recipes
    clipped into the space with `points_to_evaluate` after the default recipe, or the points alone) tried first.
    `portfolio` replaces the shipped learnt portfolio (a benchmark's leave-one-task-out arm)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study created or trial told
    # Further objectives make it a multi-objective study (the Pareto front); the scheduler ranks by the first.
    metric: str | list[str] = [search.metric, *(o.metric for o in search.objectives)]
    mode: str | list[str] = [search.mode, *(o.mode for o in search.objectives)]
    if not search.objectives:
        metric, mode = search.metric, search.mode
    return TruthfulOptunaSearch(
        space=functools.partial(suggest, space=search.space), metric=metric, mode=mode,
        sampler=search.searcher.sampler(Plan(search.num_trials, concurrent, search.space, effective_start(search))),
        start=[(name, searcher_names(point, search.space))
               for name, point in start_points(search, train or TrainConfig(), family, portfolio)],
        params=list(search.space), storage=storage, study_name=study_name,
    )
