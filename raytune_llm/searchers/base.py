"""What every searcher is: a config model chosen by `search.searcher.name` that builds an Optuna sampler when the
search starts (`sampler`, importing Optuna then, not when a config is validated) and checks itself against the
experiment (`problems`). The registry they register in, and what a searcher may size itself by (`Plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from raytune_llm.core.errors import Problem
from raytune_llm.core.protocols import Experiment
from raytune_llm.core.registry import Registry, literal_name
from raytune_llm.core.strict import Strict


@dataclass
class Plan:
    """What a searcher may size itself by."""

    num_trials: int
    concurrent: int  # trials that run at once
    space: dict[str, Any]  # name -> Param
    start: str = "random"  # search.start as it applies: portfolio, random or none


class Searcher(Strict):
    name: str
    seed: int | None = 0
    # Whether trials enqueued before it (a portfolio start) can come first; a grid is the whole plan itself.
    takes_start: ClassVar[bool] = True

    def sampler(self, plan: Plan) -> Any:
        """The Optuna sampler (imported here, when the search starts)."""
        raise NotImplementedError

    def problems(self, cfg: Experiment) -> list[Problem]:
        return []


searchers: Registry[type[Searcher]] = Registry("searcher", needs=("problems", "sampler"), check=literal_name)
