"""The task registry: one module per task, looked up by the config's `task:` value."""

from __future__ import annotations

from raytune_llm.core.registry import Registry
from raytune_llm.tasks.base import MODEL_COLUMNS, ChanceLevel, EvalBatch, Task
from raytune_llm.tasks.causal_lm import CausalLM
from raytune_llm.tasks.generative_classification import GenerativeClassification
from raytune_llm.tasks.regression import Regression
from raytune_llm.tasks.sequence_classification import SequenceClassification
from raytune_llm.tasks.token_classification import TokenClassification

tasks: Registry[Task] = Registry("task")
for _task in (SequenceClassification(), Regression(), TokenClassification(), CausalLM(), GenerativeClassification()):
    tasks.register(_task.name)(_task)


def get_task(name: str) -> Task:
    return tasks.get(name)


__all__ = ["MODEL_COLUMNS", "ChanceLevel", "EvalBatch", "Task", "get_task", "tasks"]
