"""What every scheduler is: a config model chosen by `search.scheduler.name` that builds Ray Tune's scheduler when the
search starts (`build(max_t, space)`, importing Ray then) and checks itself against the experiment (`problems`).
Time is counted in evaluation rounds (Tune's `training_iteration`: one report per `train.eval_every` steps). A
scheduler that replaces the searcher (PBT) says so with `uses_searcher = False`."""

from __future__ import annotations

from typing import Any, ClassVar

from raytune_llm.core.errors import Problem
from raytune_llm.core.protocols import Experiment
from raytune_llm.core.registry import Registry, literal_name
from raytune_llm.core.strict import Strict


class Scheduler(Strict):
    name: str
    uses_searcher: ClassVar[bool] = True

    def build(self, max_t: int, space: dict[str, Any] | None = None) -> Any:
        """Ray Tune's scheduler for trials of at most `max_t` evaluation rounds."""
        raise NotImplementedError

    def problems(self, cfg: Experiment) -> list[Problem]:
        return []


schedulers: Registry[type[Scheduler]] = Registry("scheduler", needs=("problems", "build"), check=literal_name)
