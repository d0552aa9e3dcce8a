"""Tasks: one module per kind of fine-tuning (what the data, the loop, evaluation and export need to know of it),
registered by the config's `task:` value. Nothing heavy is imported here: a task imports torch in the methods that
train and evaluate, so that `validate` can ask it to check itself.

Adding one: a module with a `Task` subclass registered with `@tasks.register("name")` (base.py), the name in
schema.Task with its metrics in schema.TASK_METRICS, and its import below.
"""

from __future__ import annotations

import functools

from raytune_llm.tasks import (  # noqa: F401 - each registers itself
    causal_lm,
    generative_classification,
    regression,
    sequence_classification,
    token_classification,
)
from raytune_llm.tasks.base import MODEL_COLUMNS, ChanceLevel, EvalBatch, Task, tasks


@functools.cache
def get_task(name: str) -> Task:
    """The task registered as `name` (tasks are stateless: one instance each)."""
    return tasks.get(name)()


__all__ = ["MODEL_COLUMNS", "ChanceLevel", "EvalBatch", "Task", "get_task", "tasks"]
