"""Tracking: a search's progress, also written where users already look, one registered tracker per `tracking:` key.

    tensorboard     RUN/tensorboard/<trial>: scalars at their optimizer step, per-step loss, the HParams view
    optuna_journal  RUN/optuna.journal: the searcher's own study (`optuna-dashboard RUN/optuna.journal`)
    mlflow          a run per trial under one experiment (default store: sqlite:///RUN/mlflow.db)
    wandb           Ray's W&B callback, off by default

Everything is written by the search's driver from the reports Tune already receives (rank 0's, all-reduced):
nothing in a training step. A run on a cloud URI writes these locally and uploads them when the search ends.
This module only decides and builds; importing it imports no tracking library and no Ray (the callbacks' modules,
tensorboard.py, mlflow.py and upload.py, do).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from raytune_llm.core import storage
from raytune_llm.core.errors import Problem
from raytune_llm.tracking.base import Tracker, package_missing, trackers

if TYPE_CHECKING:
    from raytune_llm.runs.layout import RunInfo
    from raytune_llm.schema import ExperimentConfig

JOURNAL_FILE = "optuna.journal"
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"


@trackers.register("tensorboard")
class TensorBoard(Tracker):
    def enabled(self, cfg: ExperimentConfig) -> bool:
        return cfg.tracking.tensorboard

    def callback(self, cfg: ExperimentConfig, info: RunInfo, root: Path) -> Any:
        from raytune_llm.tracking.tensorboard import TensorBoardCallback

        return TensorBoardCallback(str(root / TENSORBOARD_DIR), cfg.search.metric, cfg.search.mode)

    def look(self, cfg: ExperimentConfig, root: Path) -> str | None:
        return f"tensorboard --logdir {root / TENSORBOARD_DIR}"


@trackers.register("optuna_journal")
class OptunaJournal(Tracker):
    """Written by the searcher's own study (see `journal_storage`): no callback."""

    def enabled(self, cfg: ExperimentConfig) -> bool:
        return cfg.tracking.optuna_journal

    def look(self, cfg: ExperimentConfig, root: Path) -> str | None:
        return f"optuna-dashboard {root / JOURNAL_FILE}"


def _mlflow_uri(cfg: ExperimentConfig, root: Path) -> str:
    return cfg.tracking.mlflow.tracking_uri or f"sqlite:///{root / MLFLOW_DB}"


@trackers.register("mlflow")
class MLflow(Tracker):
    def enabled(self, cfg: ExperimentConfig) -> bool:
        return cfg.tracking.mlflow.enabled

    def writes_locally(self, cfg: ExperimentConfig) -> bool:
        return not cfg.tracking.mlflow.tracking_uri

    def callback(self, cfg: ExperimentConfig, info: RunInfo, root: Path) -> Any:
        from raytune_llm.tracking.mlflow import MLflowTracking

        return MLflowTracking(_mlflow_uri(cfg, root), cfg.tracking.mlflow.experiment or cfg.run.name,
                              cfg.search.metric, cfg.search.mode)

    def look(self, cfg: ExperimentConfig, root: Path) -> str | None:
        return f"mlflow ui --backend-store-uri {_mlflow_uri(cfg, root)}"

    def problems(self, cfg: ExperimentConfig) -> list[Problem]:
        return package_missing("mlflow", "mlflow", "pip install mlflow-skinny (or mlflow, which adds the UI)")


@trackers.register("wandb")
class Wandb(Tracker):
    def enabled(self, cfg: ExperimentConfig) -> bool:
        return cfg.tracking.wandb.enabled

    def writes_locally(self, cfg: ExperimentConfig) -> bool:
        return False

    def callback(self, cfg: ExperimentConfig, info: RunInfo, root: Path) -> Any:
        from ray.air.integrations.wandb import WandbLoggerCallback

        return WandbLoggerCallback(project=cfg.tracking.wandb.project or cfg.run.name)

    def problems(self, cfg: ExperimentConfig) -> list[Problem]:
        return package_missing("wandb", "wandb", "pip install wandb")


def enabled(cfg: ExperimentConfig) -> list[Tracker]:
    """The trackers `cfg.tracking` enables, in registration order."""
    return [tracker for _, cls in trackers if (tracker := cls()).enabled(cfg)]


def local_root(info: RunInfo) -> Path:
    """Where tracking files are written: the run folder, or for a cloud run this machine's folder for that run."""
    if storage.is_uri(info.run_root):
        return storage._cache_dir("tracking", f"{info.run_root}#{info.run_id}")
    return Path(info.run_root)


def study_name(cfg: ExperimentConfig, info: RunInfo) -> str:
    """Unique per `search`: a journal left by an earlier run under the same name is never continued."""
    return f"{cfg.run.name}-{info.run_id}" if info.run_id else cfg.run.name


def journal_storage(cfg: ExperimentConfig, info: RunInfo) -> Any:
    """The Optuna storage of the searcher's study: a journal file when `tracking.optuna_journal`, else memory."""
    if not cfg.tracking.optuna_journal:
        return None
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = local_root(info) / JOURNAL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def callbacks(cfg: ExperimentConfig, info: RunInfo) -> list[Any]:
    """The Tune callbacks of the trackers `cfg.tracking` enables."""
    root, on = local_root(info), enabled(cfg)
    out = [cb for tracker in on if (cb := tracker.callback(cfg, info, root)) is not None]
    if storage.is_uri(info.run_root) and any(tracker.writes_locally(cfg) for tracker in on):
        from raytune_llm.tracking.upload import UploadTracking

        out.append(UploadTracking(str(root), info.run_root))
    return out


def where_to_look(cfg: ExperimentConfig, info: RunInfo) -> list[str]:
    """The commands that show this search, live or after the fact, for the trackers it writes."""
    root = local_root(info)
    return [f"raytune-llm report {info.run_root}", *(line for t in enabled(cfg) if (line := t.look(cfg, root)))]
