"""Where a search starts (`search.start`): the trials tried before the searcher proposes any, as (name, point)
pairs over the space's params. A portfolio start is the default recipe of the first sampled PEFT method (the
yardstick), the user's `points_to_evaluate`, then the learnt portfolio and the other sampled methods' default
recipes, `search.portfolio_size` recipes in all; each is clipped into the user's space."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from raytune_llm.core.conditions import is_active, sampling_order
from raytune_llm.core.yardstick import DEFAULT_RECIPE
from raytune_llm.recipes.library import Family, Recipe, library
from raytune_llm.schema.search import CategoricalParam, IntParam, Param, SearchConfig
from raytune_llm.schema.space import bounds_for, peft_methods_of
from raytune_llm.schema.train import TrainConfig

Start = list[tuple[str, dict[str, Any]]]


def effective_start(search: SearchConfig) -> str:
    """`search.start`, or when unset: a portfolio wherever the searcher takes start points (not a grid, not PBT's
    population), else random."""
    if search.start is not None:
        return search.start
    takes = search.space and search.searcher.takes_start and search.scheduler.uses_searcher
    return "portfolio" if takes else "random"


def _get(data: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _number(value: Any) -> float | None:
    """A numeric value, or one YAML left as a string ('1e-3'); None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fit(param: Param, value: Any, point: dict[str, Any]) -> Any:
    """`value` moved into the param's range (its `by:` range for the point so far; onto its step), a numeric
    categorical's nearest choice, or None when it cannot be (a value the user did not list among non-numeric
    choices, no value at all): the searcher then samples the param."""
    if value is None:
        return None
    if isinstance(param, CategoricalParam):
        same = next((c for c in param.choices if c == value or str(c) == str(value)), None)
        if same is not None or _number(value) is None:
            return same
        # numeric choices (YAML may read 1e-3 as a string): the nearest one, in log space when all are positive
        numeric = [(c, n) for c in param.choices if (n := _number(c)) is not None]
        if not numeric or len(numeric) < len(param.choices):
            return None
        v = float(value)
        logs = v > 0 and all(n > 0 for _, n in numeric)
        return min(numeric, key=lambda cn: abs(math.log(cn[1] / v)) if logs else abs(cn[1] - v))[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high, _ = bounds_for(param, point)
    step = param.step if not param.log else None
    v = min(max(float(value), low), high)
    if step:  # onto the grid the searcher samples: low + k * step, the last point at or below high
        v = low + min(round((v - low) / step), math.floor((high - low) / step + 1e-9)) * step
    if isinstance(param, IntParam):
        return int(min(max(round(v), math.ceil(low)), math.floor(high)))
    return float(v)


def clip_into(recipe: Recipe, space: dict[str, Param], train: TrainConfig) -> dict[str, Any] | None:
    """The recipe as a point of the space, or None when the space cannot sample its method. Values outside the
    user's ranges move to the nearest bound; params the user did not search are left alone (their `train:` value
    stands); a searched param the recipe does not name (or names a value the user did not list) takes the user's
    `train:` value when the space holds it, else the searcher samples it;
    params inactive under the recipe's method (`when:`) are left out."""
    method_param = space.get("peft.method")
    point: dict[str, Any] = {}
    if method_param is None:
        if train.peft.method != recipe.method:
            return None
    else:
        choice = _fit(method_param, recipe.method.value, point)
        if choice is None:
            return None
        point["peft.method"] = choice
    own = train.model_dump(mode="json")
    for name in sampling_order(space):
        param = space[name]
        if name == "peft.method" or not is_active(param, point):
            continue
        value = _fit(param, recipe.params.get(name), point)
        if value is None:  # the recipe does not name it, or names a value the user did not list
            value = _fit(param, _get(own, name), point)
        if value is not None:
            point[name] = value
    return point


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two points would run (nearly) the same trial: the same params, categorical values equal, numbers
    within 20% of each other (a learnt 1.03e-4 is the default recipe's 1e-4 again, not a new recipe)."""
    if a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
        if (numbers and abs(x - y) > 0.2 * max(abs(x), abs(y))) or (not numbers and x != y):
            return False
    return True


def start_points(search: SearchConfig, train: TrainConfig, family: Family = "encoder",
                 portfolio: Sequence[Recipe] | None = None) -> Start:
    """The trials a search starts with, named. `portfolio` replaces the shipped learnt one (a benchmark's
    leave-one-task-out portfolio)."""
    user = [(f"points_to_evaluate[{i}]", dict(p)) for i, p in enumerate(search.points_to_evaluate)]
    if effective_start(search) != "portfolio":
        return user
    lib = library()
    methods = peft_methods_of(search.space, train)
    first, *others = methods
    learnt = list(lib.portfolio[family] if portfolio is None else portfolio)
    candidates = [lib.default(first, family).model_copy(update={"name": DEFAULT_RECIPE}),
                  *learnt,
                  *(lib.default(m, family).model_copy(update={"name": f"default-{m.value}"}) for m in others)]
    chosen: Start = []
    for recipe in candidates:
        point = clip_into(recipe, search.space, train)
        if point is not None and not any(_same(point, p) for _, p in chosen):
            chosen.append((recipe.name, point))
        if len(chosen) == search.portfolio_size:
            break
    return [*chosen[:1], *user, *chosen[1:]]
