"""Read an experiment YAML, apply `--set` overrides, validate, and report every problem at once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from raytune_llm.config.plugins import plugin_problems
from raytune_llm.config.rules import rule_problems
from raytune_llm.core.errors import ConfigError, Problem, UserError
from raytune_llm.core.registry import Registry
from raytune_llm.schedulers import schedulers
from raytune_llm.schema import ExperimentConfig, SearchConfig, TrainConfig
from raytune_llm.schema.space import check_space, set_path
from raytune_llm.searchers import searchers

_PARAM_TAGS = {"float", "int", "categorical"}
# Registries chosen by `name:`: their loc carries the chosen name as a union tag (search.searcher.<tag>.<field>).
_REGISTRIES: dict[str, Registry[Any]] = {"searcher": searchers, "scheduler": schedulers}


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the last element of `loc` (for listing its allowed keys)."""
    if len(loc) == 4 and loc[0] == "search" and loc[1] in _REGISTRIES:
        registry, name = _REGISTRIES[loc[1]], str(loc[2])
        return registry.get(name) if name in registry else None
    model: type[BaseModel] | None = ExperimentConfig
    for key in loc[:-1]:
        if model is None or key not in model.model_fields:
            return None
        ann = model.model_fields[key].annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model


def _path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    # A search-space param's loc carries the union tag: search.space.<name>.<tag>.<field>.
    if len(parts) > 3 and parts[:2] == ["search", "space"] and parts[3] in _PARAM_TAGS:
        del parts[3]
    elif len(parts) > 3 and parts[0] == "search" and parts[2] in _REGISTRIES.get(parts[1], {}):
        del parts[2]
    return ".".join(parts)


def _problem(err: dict[str, Any]) -> Problem:
    loc = tuple(err["loc"])
    path = _path(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc)
        allowed = ", ".join(owner.model_fields) if owner else "see the README"
        return Problem(path, f"unknown key; allowed here: {allowed}")
    if kind == "missing":
        return Problem(path, "required setting is missing; add it")
    if (kind == "union_tag_invalid" or kind == "union_tag_not_found") and len(loc) == 2 and loc[1] in _REGISTRIES:
        name = err.get("ctx", {}).get("tag", "?")
        choices = ", ".join(_REGISTRIES[loc[1]].names())
        return Problem(f"{path}.name", f"unknown {loc[1]} {name!r}; choose from {choices}")
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        return Problem(path, "param needs `type:` float, int or categorical")
    msg = err["msg"]
    if "input" in err and kind not in ("value_error", "assertion_error"):
        msg = f"{msg}, got {err['input']!r}"
    msg = msg.removeprefix("Value error, ")
    if not path and (found := re.match(r"([a-z_]+(?:\.[a-z_]+)+): (.*)", msg, re.DOTALL)):
        return Problem(*found.groups())  # a cross-field validator names the setting at fault in its message
    return Problem(path, msg)


def parse_overrides(overrides: list[str]) -> tuple[list[tuple[str, Any]], list[Problem]]:
    """`key.path=value` pairs; the value is read as YAML so `--set train.seed=3` is an int."""
    pairs, problems = [], []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(f"--set {item}", "expected KEY=VALUE, e.g. --set train.optimizer.lr=3e-5"))
            continue
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        pairs.append((key.strip(), value))
    return pairs, problems


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: no such file; check the path")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(str(path), [Problem(where, f"malformed YAML: {reason}")]) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), [Problem("", "the file must be a YAML mapping (key: value lines)")])
    return data


def experiment_problems(cfg: ExperimentConfig) -> list[Problem]:
    """Every problem of a schema-valid experiment: its search space's, the cross-field rules', and each plug-in's
    own (raytune_llm.config.plugins)."""
    return check_space(cfg.search.space, cfg.train) + rule_problems(cfg) + plugin_problems(cfg)


def validate_dict(data: dict[str, Any], source: str = "<config>") -> ExperimentConfig:
    try:
        cfg = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors()]
        # Still check the search space, so a type error elsewhere does not hide its problems.
        try:
            search = SearchConfig.model_validate(data.get("search") or {})
        except (ValidationError, TypeError):
            search = None
        if search is not None:
            problems += check_space(search.space, TrainConfig())
        raise ConfigError(source, problems) from None
    problems = experiment_problems(cfg)
    if problems:
        raise ConfigError(source, problems)
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """The validated experiment; raises ConfigError listing every problem."""
    path = Path(path)
    data = read_yaml(path)
    pairs, problems = parse_overrides(overrides or [])
    if problems:
        raise ConfigError(str(path), problems)
    for key, value in pairs:
        set_path(data, key, value)
    return validate_dict(data, str(path))
