"""The `tracking:` section: where a search's progress is also written for the tools users already look at
(raytune_llm.tracking). Pure pydantic (validating it imports no tracking library)."""

from __future__ import annotations

from pydantic import Field

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
