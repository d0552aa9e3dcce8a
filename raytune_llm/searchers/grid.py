"""Grid search: every combination of the space's values, each once, in a seeded order. Every param must be
enumerable (choices, or an int/float range with a `step`); `validate` says which is not and how many points the
grid has, so that `search.num_trials` can cover it. A param with `when:` is varied only where it is sampled: two
points that differ only in a param their conditions leave out are one trial, not two."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from raytune_llm.core.conditions import is_active, sampling_order
from raytune_llm.core.errors import Problem
from raytune_llm.core.protocols import Experiment
from raytune_llm.searchers.base import Plan, Searcher, searchers


def param_values(param: Any) -> list[Any] | None:
    """The values a param takes on the grid; None when it has no finite set of values."""
    choices = getattr(param, "choices", None)
    if choices is not None:
        return list(choices)
    step = getattr(param, "step", None)
    if step is None or getattr(param, "log", False) or getattr(param, "by", None):
        return None
    count = round((param.high - param.low) / step) + 1
    if isinstance(param.low, int) and isinstance(step, int):
        return [param.low + i * step for i in range(count)]
    return [float(f"{param.low + i * step:.12g}") for i in range(count)]  # 3e-05, not 3.0000000000000004e-05


def grid_points(space: dict[str, Any]) -> list[dict[str, Any]]:
    """Every distinct trial of the grid: each combination of the values of the params active in it, in order."""
    points: list[dict[str, Any]] = [{}]
    for name in sampling_order(space):
        param, grown = space[name], []
        for point in points:
            if is_active(param, point):
                grown += [{**point, name: value} for value in param_values(param) or [None]]
            else:
                grown.append(point)
        points = grown
    return points


def grid_size(space: dict[str, Any]) -> int:
    return len(grid_points(space))


@searchers.register("grid")
class GridSearcher(Searcher):
    name: Literal["grid"] = "grid"
    takes_start: ClassVar[bool] = False

    def sampler(self, plan: Plan) -> Any:
        from raytune_llm.searchers.grid_sampler import PointsSampler

        return PointsSampler(grid_points(plan.space), seed=self.seed)

    def problems(self, cfg: Experiment) -> list[Problem]:
        s, problems = cfg.search, []
        for name, param in s.space.items():
            if param_values(param) is None:
                problems.append(Problem(f"search.space.{name}", "grid search needs a finite set of values: give "
                                        "`choices`, or a `step` without `log: true`"))
        if not problems and s.space and s.num_trials != (size := grid_size(s.space)):
            problems.append(Problem("search.num_trials", f"is {s.num_trials}, but the grid has {size} points; set "
                                    f"it to {size} to try each once"))
        if s.points_to_evaluate:
            problems.append(Problem("search.points_to_evaluate", "grid search already tries every combination; "
                                    "remove the points or choose another searcher"))
        if s.start == "portfolio":
            problems.append(Problem("search.start", "grid search tries every point of its grid and no recipe "
                                    "first; remove search.start or choose another searcher"))
        return problems
