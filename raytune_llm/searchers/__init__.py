"""Searchers: what proposes each trial's params, registered by `search.searcher.name`, one module each. Every one is
an Optuna sampler driven through Tune (raytune_llm.search.tell), so all share the define-by-run space, the `when:`
conditions, `points_to_evaluate` and the same truthful feedback. Nothing heavy is imported here: a searcher's
`sampler()` imports Optuna when the search starts, not when a config is validated.

Adding one: a module with a `Searcher` subclass whose `name` is a Literal, registered with
`@searchers.register("name")` (base.py), and its import below.
"""

from raytune_llm.searchers import gp, grid, random, tpe  # noqa: F401 - each registers itself
from raytune_llm.searchers.base import Plan, Searcher, searchers

DEFAULT = "tpe"
ALIASES = {"optuna": "tpe"}  # the name before there was a choice
SearcherConfig = searchers.union(DEFAULT, ALIASES)

__all__ = ["ALIASES", "DEFAULT", "Plan", "Searcher", "SearcherConfig", "searchers"]
