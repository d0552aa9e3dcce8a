"""The experiment as the plug-ins below the schema see it in their checks. Searchers and schedulers are config models
the schema's `search:` section is built from, so they cannot import the schema; their `problems(cfg)` hooks are
typed by these protocols instead, which raytune_llm.schema.ExperimentConfig satisfies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class SearchSection(Protocol):
    @property
    def space(self) -> Mapping[str, Any]: ...  # name -> schema.Param

    @property
    def num_trials(self) -> int: ...

    @property
    def points_to_evaluate(self) -> Sequence[Mapping[str, Any]]: ...

    @property
    def start(self) -> str | None: ...


class ResourcesSection(Protocol):
    @property
    def in_process(self) -> bool: ...


class Experiment(Protocol):
    @property
    def search(self) -> SearchSection: ...

    @property
    def resources(self) -> ResourcesSection: ...
