"""What every tracker is: a registered class that says whether the experiment enables it, checks itself
(`problems`: its package is installed), and makes the Tune callback that writes the search where its tool reads it,
importing that tool only then."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from raytune_llm.core.errors import Problem
from raytune_llm.core.registry import Registry

if TYPE_CHECKING:
    from raytune_llm.runs.layout import RunInfo
    from raytune_llm.schema import ExperimentConfig


class Tracker:
    def enabled(self, cfg: ExperimentConfig) -> bool:
        raise NotImplementedError

    def callback(self, cfg: ExperimentConfig, info: RunInfo, root: Path) -> Any:
        """The Tune callback that writes this tracker's view (None: the tracker needs none)."""
        return None

    def writes_locally(self, cfg: ExperimentConfig) -> bool:
        """Whether it writes under the run's local tracking folder (uploaded when a search on a cloud URI ends)."""
        return True

    def look(self, cfg: ExperimentConfig, root: Path) -> str | None:
        """The command that shows what it wrote (None: nothing to run)."""
        return None

    def problems(self, cfg: ExperimentConfig) -> list[Problem]:
        return []


def _known(name: str, cls: Any) -> str | None:
    from raytune_llm.schema import TrackingConfig

    return None if name in TrackingConfig.model_fields else f"no tracking.{name} setting in schema.TrackingConfig"


trackers: Registry[type[Tracker]] = Registry("tracker", needs=("problems", "enabled", "callback", "look"),
                                             check=_known)


def package_missing(name: str, module: str, fix: str) -> list[Problem]:
    """An enabled tracker whose package is missing: refused up front, not after the first trial."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return [Problem(f"tracking.{name}.enabled", f"needs the {module} package, which is not installed: {fix}, or "
                        "set it to false")]
    return []
