"""Tree-structured Parzen Estimator (Optuna's default): models good and bad regions of the space separately."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

from pydantic import Field

from raytune_llm.searchers.base import Plan, Searcher, searchers

MIN_STARTUP = 4


def startup_trials(num_trials: int, start: str = "random") -> int:
    """Trials before the model takes over: a third of the budget, at least MIN_STARTUP (Optuna's own 10 would make
    the whole of a typical 8-12-trial fine-tuning search random). A portfolio start's recipes are enqueued trials
    of the same study and count among them, so the random draws shrink by as many. `search.start: none`: the model
    from the first result on (one trial to learn from)."""
    return 1 if start == "none" else max(MIN_STARTUP, math.ceil(num_trials / 3))


@searchers.register("tpe")
class TPESearcher(Searcher):
    name: Literal["tpe", "optuna"] = "tpe"
    n_startup_trials: int | None = Field(
        None, ge=1, description="random trials before TPE models the space; default: a third of search.num_trials, "
        f"at least {MIN_STARTUP}")
    multivariate: bool = Field(True, description="model params jointly (and conditional ones in groups)")
    constant_liar: bool | None = Field(
        None, description="count running trials as bad, so that concurrent trials get different proposals; "
        "default: on when trials run concurrently")

    def sampler(self, plan: Plan) -> Any:
        import optuna

        liar = plan.concurrent > 1 if self.constant_liar is None else self.constant_liar
        with warnings.catch_warnings():  # `group` is marked experimental; it is what conditional params need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=self.seed, n_startup_trials=self.n_startup_trials or startup_trials(plan.num_trials, plan.start),
                multivariate=self.multivariate, group=self.multivariate, constant_liar=liar,
            )
