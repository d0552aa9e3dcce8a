"""Each plug-in an experiment uses checks itself: its searcher and scheduler, the executor its trials train in, the
trackers and stability detectors it enables, its task, and every PEFT method its search can sample. Each kind is
a registry (raytune_llm.core.registry) whose plug-ins have a `problems(cfg)` hook; this module asks the ones in
use, so that `validate` reports their problems with everyone else's.

Every module imported here is light (no torch, no Ray at import): validating a config stays instant.
"""

from __future__ import annotations

from typing import Any

from raytune_llm import tracking
from raytune_llm.core.errors import Problem
from raytune_llm.executors import executor_for
from raytune_llm.models.peft_methods import method as peft_method
from raytune_llm.schema import ExperimentConfig
from raytune_llm.schema.space import sampled_peft_methods
from raytune_llm.tasks import get_task
from raytune_llm.training.stability import enabled_detectors


def plugins_used(cfg: ExperimentConfig) -> list[Any]:
    """The plug-ins `cfg` runs with, each with its `problems(cfg)`."""
    return [cfg.search.searcher, cfg.search.scheduler, executor_for(cfg.resources), *tracking.enabled(cfg),
            *enabled_detectors(cfg.stability), get_task(cfg.task.value),
            *(peft_method(m.value) for m in sampled_peft_methods(cfg))]


def plugin_problems(cfg: ExperimentConfig) -> list[Problem]:
    return [problem for plugin in plugins_used(cfg) for problem in plugin.problems(cfg)]
