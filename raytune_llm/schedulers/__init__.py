"""Schedulers: what stops (or keeps) trials while they run. A registry by `search.scheduler.name`, one module
each; a scheduler's `build(max_t)` imports Ray Tune when the search starts, not when a config is validated.
Time is counted in evaluation rounds (Tune's `training_iteration`: one report per `train.eval_every` steps).

Adding one: a module with a `Strict` config whose `name` is a Literal and a `build(max_t, space)` method, then one
line in `SCHEDULERS` below. A scheduler that replaces the searcher (PBT) says so with `uses_searcher = False`.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from raytune_llm.schedulers.asha import ASHAScheduler, HyperbandScheduler
from raytune_llm.schedulers.fifo import FIFOScheduler
from raytune_llm.schedulers.median import MedianScheduler
from raytune_llm.schedulers.pbt import PBTScheduler

SCHEDULERS = {"asha": ASHAScheduler, "hyperband": HyperbandScheduler, "median": MedianScheduler,
              "fifo": FIFOScheduler, "pbt": PBTScheduler}
DEFAULT = "asha"


def _tag(value: Any) -> str:
    return value.get("name", DEFAULT) if isinstance(value, dict) else getattr(value, "name", DEFAULT)


SchedulerConfig = Annotated[
    Union[tuple(Annotated[cls, Tag(name)] for name, cls in SCHEDULERS.items())],  # noqa: UP007 - built at run time
    Discriminator(_tag),
]
