"""Schedulers: what stops (or keeps) trials while they run, registered by `search.scheduler.name`, one module each; a
scheduler's `build(max_t, space)` imports Ray Tune when the search starts, not when a config is validated.

Adding one: a module with a `Scheduler` subclass whose `name` is a Literal, registered with
`@schedulers.register("name")` (base.py), and its import below.
"""

from raytune_llm.schedulers import asha, fifo, median, pbt  # noqa: F401 - each registers itself
from raytune_llm.schedulers.base import Scheduler, schedulers

DEFAULT = "asha"
SchedulerConfig = schedulers.union(DEFAULT)

__all__ = ["DEFAULT", "Scheduler", "SchedulerConfig", "schedulers"]
