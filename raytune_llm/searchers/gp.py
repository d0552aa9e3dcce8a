"""Gaussian-process Bayesian optimisation (Optuna's GPSampler): the most sample-efficient on small, continuous
spaces; params it cannot model (conditional ones) are sampled at random."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from raytune_llm.searchers.base import Plan, Searcher, searchers
from raytune_llm.searchers.tpe import MIN_STARTUP, startup_trials


@searchers.register("gp")
class GPSearcher(Searcher):
    name: Literal["gp"] = "gp"
    n_startup_trials: int | None = Field(
        None, ge=1, description="random trials before the GP models the space; default: a third of "
        f"search.num_trials, at least {MIN_STARTUP}")

    def sampler(self, plan: Plan) -> Any:
        import optuna

        return optuna.samplers.GPSampler(
            seed=self.seed, n_startup_trials=self.n_startup_trials or startup_trials(plan.num_trials, plan.start),
            warn_independent_sampling=False,
        )
