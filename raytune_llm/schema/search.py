"""The `search:` section as pydantic models: the space's params (with `when:` conditions and `by:` ranges), the
searcher and scheduler (registries: raytune_llm.searchers, raytune_llm.schedulers), the objectives. Nothing heavy is
imported here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from raytune_llm.core.strict import Strict
from raytune_llm.schedulers import SchedulerConfig
from raytune_llm.schedulers.asha import ASHAScheduler
from raytune_llm.searchers import SearcherConfig
from raytune_llm.searchers.tpe import TPESearcher


class _Param(Strict):
    when: dict[str, Any] | None = Field(
        None, description="sample only when another categorical param has one of these values"
    )


class Bounds(Strict):
    low: float
    high: float


# A range per value of a categorical param, e.g. {peft.method: {lora: {low: 1e-4, high: 3e-3}}}: one space can
# give each PEFT method the learning rates it needs. Values of that param not listed use the param's own range.
ByRanges = dict[str, dict[Any, Bounds]]


class FloatParam(_Param):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)
    by: ByRanges | None = Field(None, description="ranges that depend on one categorical param's value")


class IntParam(_Param):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)
    by: ByRanges | None = Field(None, description="ranges that depend on one categorical param's value")


class CategoricalParam(_Param):
    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Objective(Strict):
    metric: str
    mode: Literal["max", "min"]


# Reported by every task besides its metrics: objectives to trade the metric off against.
COST_METRICS = ("trainable_params",)


class SearchConfig(Strict):
    metric: str | None = Field(None, description="default: the task's objective (eval_accuracy, eval_pearson, ...)")
    mode: Literal["max", "min"] | None = None
    num_trials: int = Field(8, ge=1)
    max_concurrent_trials: int | None = Field(None, ge=1)
    time_budget_s: float | None = Field(None, gt=0)
    space: dict[str, Param] = Field(default_factory=dict)
    searcher: SearcherConfig = Field(default_factory=TPESearcher, description="what proposes params (searchers/)")
    scheduler: SchedulerConfig = Field(default_factory=ASHAScheduler, description="what stops trials (schedulers/)")
    start: Literal["portfolio", "random", "none"] | None = Field(
        None, description="the trials before the searcher proposes: portfolio = the default recipe (run to its full "
        "budget: the yardstick) then the learnt portfolio (raytune_llm/recipes); random = the searcher's random "
        "start-up trials; none = the searcher from the first trial; default: portfolio where the searcher takes "
        "start points (not grid, not PBT), else random")
    portfolio_size: int = Field(3, ge=1, description="recipes a portfolio start tries, the default recipe "
                                "included; the searcher's random start-up trials shrink by as many")
    points_to_evaluate: list[dict[str, Any]] = Field(
        default_factory=list, description="recipes to try first, as {param: value} over search.space's params")
    objectives: list[Objective] = Field(
        default_factory=list, description="further objectives traded off against search.metric (multi-objective "
        "search: the searcher looks for the Pareto front)")
    pareto_tolerance: float = Field(
        0.0, ge=0, description="export's pick from the Pareto front: among trials within this much of the best "
        "search.metric, the best in the first further objective; 0 = the best search.metric")
