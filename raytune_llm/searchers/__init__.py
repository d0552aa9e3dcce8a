"""Searchers: what proposes each trial's params. A registry by `search.searcher.name`, one module each; every one
is an Optuna sampler driven through Tune (`raytune_llm.search.tell`), so all share the define-by-run space, the
`when:` conditions, `points_to_evaluate` and the same truthful feedback. Nothing heavy is imported here: a
searcher's `sampler()` imports Optuna when the search starts, not when a config is validated.

Adding one: a module with a `Strict` config whose `name` is a Literal and a `sampler(plan)` method, then one line
in `SEARCHERS` below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from raytune_llm.searchers.gp import GPSearcher
from raytune_llm.searchers.grid import GridSearcher
from raytune_llm.searchers.random import RandomSearcher
from raytune_llm.searchers.tpe import TPESearcher

SEARCHERS = {"tpe": TPESearcher, "random": RandomSearcher, "grid": GridSearcher, "gp": GPSearcher}
DEFAULT = "tpe"
ALIASES = {"optuna": "tpe"}  # the name before there was a choice


@dataclass
class Plan:
    """What a searcher may size itself by."""

    num_trials: int
    concurrent: int  # trials that run at once
    space: dict[str, Any]  # name -> Param


def _tag(value: Any) -> str:
    name = value.get("name", DEFAULT) if isinstance(value, dict) else getattr(value, "name", DEFAULT)
    return ALIASES.get(name, name)


SearcherConfig = Annotated[
    Union[tuple(Annotated[cls, Tag(name)] for name, cls in SEARCHERS.items())],  # noqa: UP007 - built at run time
    Discriminator(_tag),
]
