"""The `tracking:` section: where a search's progress is also written for the tools users already look at.
Pure pydantic (validating it imports no tracking library)."""

from __future__ import annotations

import importlib.util

from pydantic import Field

from raytune_llm.core.errors import Problem
from raytune_llm.core.strict import Strict


class MLflowConfig(Strict):
    enabled: bool = False
    tracking_uri: str | None = Field(None, description="default: sqlite:///RUN/mlflow.db, a file in the run folder")
    experiment: str | None = Field(None, description="MLflow experiment; default: run.name")


class WandbConfig(Strict):
    enabled: bool = False
    project: str | None = Field(None, description="default: run.name")


class TrackingConfig(Strict):
    tensorboard: bool = Field(True, description="RUN/tensorboard: scalars per trial and the HParams view")
    optuna_journal: bool = Field(True, description="RUN/optuna.journal: the searcher's study, for optuna-dashboard")
    mlflow: MLflowConfig = MLflowConfig()
    wandb: WandbConfig = WandbConfig()


# Which package each optional tracker needs, and how to get it.
NEEDS = {"mlflow": ("mlflow", "pip install mlflow-skinny (or mlflow, which adds the UI)"),
         "wandb": ("wandb", "pip install wandb")}


def problems(tracking: TrackingConfig) -> list[Problem]:
    """An enabled tracker whose package is missing: refused up front, not after the first trial."""
    out = []
    for name, (module, fix) in NEEDS.items():
        if getattr(tracking, name).enabled and importlib.util.find_spec(module) is None:
            out.append(Problem(f"tracking.{name}.enabled", f"needs the {module} package, which is not installed: "
                                                           f"{fix}, or set it to false"))
    return out
