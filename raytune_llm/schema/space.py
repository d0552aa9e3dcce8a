"""Search-space params: checks, the Optuna define-by-run function, and applying sampled values.

A param's key is a dotted path into the `train:` section (e.g. `optimizer.lr`, `peft.lora.r`), so a
sampled config is just the fixed training config with some values replaced. Bounds are inclusive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from raytune_llm.core.conditions import allowed_values, is_active, sampling_order
from raytune_llm.core.errors import Problem
from raytune_llm.core.yardstick import RECIPE_KEY
from raytune_llm.schema.search import CategoricalParam, FloatParam, IntParam, Param
from raytune_llm.schema.train import PeftMethod, TrainConfig

if TYPE_CHECKING:
    import optuna

    from raytune_llm.schema.experiment import ExperimentConfig


def _submodel(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    field = model.model_fields.get(key)
    ann = field.annotation if field else None
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def settable_paths(model: type[BaseModel] = TrainConfig, prefix: str = "") -> list[str]:
    """Every leaf setting under `model`, as dotted paths."""
    paths = []
    for key in model.model_fields:
        sub = _submodel(model, key)
        paths += settable_paths(sub, f"{prefix}{key}.") if sub else [f"{prefix}{key}"]
    return paths


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at a dotted path in nested dicts, creating levels as needed."""
    *parents, leaf = path.split(".")
    for key in parents:
        nxt = data.get(key)
        if not isinstance(nxt, dict):
            nxt = data[key] = {}
        data = nxt
    data[leaf] = value


def apply_params(train: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """The training config with sampled values written in (validated again). A portfolio trial's recipe name
    (core.yardstick.RECIPE_KEY) rides along in its Tune config: it names the trial's start, not a setting."""
    data = train.model_dump(mode="json")
    for path, value in params.items():
        if path != RECIPE_KEY:
            set_path(data, path, value)
    return TrainConfig.model_validate(data)


def bounds_for(param: FloatParam | IntParam, sampled: dict[str, Any]) -> tuple[Any, Any, str]:
    """The param's range given the values sampled so far (its `by:` range for the sampled value of that param,
    else its own), and the suffix that names that range's own dimension for the searcher."""
    for parent, table in (param.by or {}).items():
        value = sampled.get(parent)
        for key, bounds in table.items():
            if parent in sampled and str(key) == str(value):
                cast = int if isinstance(param, IntParam) else float
                return cast(bounds.low), cast(bounds.high), f"[{parent}={value}]"
    return param.low, param.high, ""


def searcher_names(point: dict[str, Any], space: dict[str, Param]) -> dict[str, Any]:
    """A point of canonical params as the searcher names them (a `by:` range is a dimension of its own)."""
    named: dict[str, Any] = {}
    for name in sampling_order(space):
        if name in point:
            param = space[name]
            suffix = "" if isinstance(param, CategoricalParam) else bounds_for(param, point)[2]
            named[name + suffix] = point[name]
    return named


def candidate_values(param: Param) -> list[Any]:
    """Values that stand for everything the param can take: its choices, or the ends of each of its ranges."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    extra = [v for table in (param.by or {}).values() for b in table.values() for v in (b.low, b.high)]
    return [param.low, param.high, *extra]


def possible_values(cfg: ExperimentConfig, path: str) -> list[Any]:
    """Values that stand for everything a `train:` setting can be in this experiment: its candidate values when the
    space searches it, else its one value."""
    if (param := cfg.search.space.get(path)) is not None:
        return candidate_values(param)
    value: Any = cfg.train
    for key in path.split("."):
        value = getattr(value, key)
    return [value]


def _by_problems(where: str, param: FloatParam | IntParam, space: dict[str, Param]) -> list[Problem]:
    if len(param.by or {}) > 1:
        return [Problem(f"{where}.by", "ranges can depend on one param; keep one key")]
    problems = []
    for parent, table in (param.by or {}).items():
        parent_param = space.get(parent)
        if not isinstance(parent_param, CategoricalParam):
            return [Problem(f"{where}.by.{parent}", "must name a categorical param of search.space")]
        for key, bounds in table.items():
            at = f"{where}.by.{parent}.{key}"
            if str(key) not in [str(c) for c in parent_param.choices]:
                problems.append(Problem(at, f"{key!r} is not one of its choices {parent_param.choices}"))
            if bounds.low > bounds.high:
                problems.append(Problem(at, f"`low <= high` must hold, got low={bounds.low}, high={bounds.high}"))
            if param.log and bounds.low <= 0:
                problems.append(Problem(at, f"log: true needs low > 0, got low={bounds.low}"))
            if isinstance(param, IntParam) and not (bounds.low.is_integer() and bounds.high.is_integer()):
                problems.append(Problem(at, "an int param's bounds must be whole numbers"))
    return problems


def check_space(space: dict[str, Param], train: TrainConfig) -> list[Problem]:
    """All problems in the space at once, each with its YAML path and the fix."""
    problems: list[Problem] = []
    known = set(settable_paths())
    for name, param in space.items():
        where = f"search.space.{name}"
        if name not in known:
            close = sorted(p for p in known if p.split(".")[-1] == name.split(".")[-1])
            hint = f"did you mean {', '.join(close)}?" if close else "keys are paths into `train:`"
            problems.append(Problem(where, f"no setting {name!r} in train; {hint}"))
            continue
        if isinstance(param, (FloatParam, IntParam)):
            if param.low > param.high:
                problems.append(
                    Problem(where, f"`low <= high` must hold, got low={param.low}, high={param.high}; swap them")
                )
            if param.log and param.low <= 0:
                problems.append(
                    Problem(where, f"log: true needs low > 0, got low={param.low}; raise low or drop log")
                )
            if param.log and isinstance(param, FloatParam) and param.step is not None:
                problems.append(Problem(where, "log and step cannot be combined; drop one of them"))
        for value in candidate_values(param):
            try:
                apply_params(train, {name: value})
            except ValidationError as exc:
                msg = exc.errors()[0]["msg"]
                problems.append(Problem(where, f"value {value!r} is not valid for train.{name}: {msg}"))
                break
        if not isinstance(param, CategoricalParam) and param.by:
            problems += _by_problems(where, param, space)
        for parent, values in (param.when or {}).items():
            parent_param = space.get(parent)
            if parent_param is None:
                problems.append(
                    Problem(f"{where}.when", f"refers to {parent!r}, which is not a param in search.space")
                )
            elif not isinstance(parent_param, CategoricalParam):
                problems.append(Problem(f"{where}.when", f"{parent!r} must be a categorical param"))
            else:
                for value in allowed_values(values):
                    if value not in parent_param.choices:
                        problems.append(
                            Problem(
                                f"{where}.when.{parent}",
                                f"{value!r} is not one of its choices {parent_param.choices}",
                            )
                        )
    try:
        sampling_order(space)
    except ValueError as exc:
        problems.append(Problem("search.space", str(exc)))
    return problems


def suggest(trial: optuna.Trial, space: dict[str, Param]) -> dict[str, Any]:
    """Optuna define-by-run: sample active params in dependency order."""
    sampled: dict[str, Any] = {}
    for name in sampling_order(space):
        param = space[name]
        if not is_active(param, sampled):
            continue
        if isinstance(param, FloatParam):
            low, high, suffix = bounds_for(param, sampled)
            sampled[name] = trial.suggest_float(name + suffix, low, high, log=param.log, step=param.step)
        elif isinstance(param, IntParam):
            low, high, suffix = bounds_for(param, sampled)
            step = 1 if param.log else param.step
            sampled[name] = trial.suggest_int(name + suffix, low, high, log=param.log, step=step)
        else:
            sampled[name] = trial.suggest_categorical(name, param.choices)
    return sampled


def batch_param_values(param: Param) -> list[int] | None:
    """Every batch size the param can sample, or None when there are too many to list (log-scaled ints)."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if isinstance(param, IntParam) and not param.log:
        return list(range(param.low, param.high + 1, param.step))
    return None


def batch_values(cfg: ExperimentConfig) -> list[int]:
    """The global batch sizes a trial can get (a log-scaled range: its largest, the one that matters for memory)."""
    batch = cfg.search.space.get("batch_size")
    if batch is None or isinstance(batch, FloatParam):
        return [cfg.train.batch_size]
    values = batch_param_values(batch)
    return [int(v) for v in values] if values is not None else [int(batch.high)]


def peft_methods_of(space: dict[str, Param], train: TrainConfig) -> list[PeftMethod]:
    """The PEFT methods a trial can get from this space and training config, in the space's order."""
    p = space.get("peft.method")
    return [PeftMethod(m) for m in p.choices] if isinstance(p, CategoricalParam) else [train.peft.method]


def sampled_peft_methods(cfg: ExperimentConfig) -> list[PeftMethod]:
    """The PEFT methods a trial of the search can get."""
    return peft_methods_of(cfg.search.space, cfg.train)
