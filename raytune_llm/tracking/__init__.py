"""Tracking: a search's progress, also written where users already look (a registry by `tracking:` key).

    tensorboard     RUN/tensorboard/<trial>: scalars at their optimizer step, per-step loss, the HParams view
    optuna_journal  RUN/optuna.journal: the searcher's own study (`optuna-dashboard RUN/optuna.journal`)
    mlflow          a run per trial under one experiment (default store: sqlite:///RUN/mlflow.db)
    wandb           Ray's W&B callback, off by default

Everything is written by the search's driver from the reports Tune already receives (rank 0's, all-reduced):
nothing in a training step. A run on a cloud URI writes these locally and uploads them when the search ends.
This module only builds; importing it imports no tracking library (the config lives in `tracking.config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # raytune_llm.schema.experiment imports tracking.config, and so this package, first
    from raytune_llm.runs.layout import RunInfo
    from raytune_llm.schema.experiment import ExperimentConfig

JOURNAL_FILE = "optuna.journal"
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"


def local_root(info: RunInfo) -> Path:
    """Where tracking files are written: the run folder, or for a cloud run this machine's folder for that run."""
    from raytune_llm.core import storage

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
    from raytune_llm.core import storage

    t, s, root, out, run_root = cfg.tracking, cfg.search, local_root(info), [], info.run_root
    if t.tensorboard:
        from raytune_llm.tracking.tensorboard import TensorBoardCallback

        out.append(TensorBoardCallback(str(root / TENSORBOARD_DIR), s.metric, s.mode))
    if t.mlflow.enabled:
        from raytune_llm.tracking.mlflow import MLflowTracking

        uri = t.mlflow.tracking_uri or f"sqlite:///{root / MLFLOW_DB}"
        out.append(MLflowTracking(uri, t.mlflow.experiment or cfg.run.name, s.metric, s.mode))
    if t.wandb.enabled:
        from ray.air.integrations.wandb import WandbLoggerCallback

        out.append(WandbLoggerCallback(project=t.wandb.project or cfg.run.name))
    if storage.is_uri(run_root) and (t.tensorboard or t.optuna_journal or (t.mlflow.enabled
                                                                          and not t.mlflow.tracking_uri)):
        from raytune_llm.tracking.upload import UploadTracking

        out.append(UploadTracking(str(root), run_root))
    return out


def where_to_look(cfg: ExperimentConfig, info: RunInfo) -> list[str]:
    """The commands that show this search, live or after the fact, for the trackers it writes."""
    root, run = local_root(info), info.run_root
    out = [f"raytune-llm report {run}"]
    if cfg.tracking.tensorboard:
        out.append(f"tensorboard --logdir {root / TENSORBOARD_DIR}")
    if cfg.tracking.optuna_journal:
        out.append(f"optuna-dashboard {root / JOURNAL_FILE}")
    if cfg.tracking.mlflow.enabled:
        uri = cfg.tracking.mlflow.tracking_uri or f"sqlite:///{root / MLFLOW_DB}"
        out.append(f"mlflow ui --backend-store-uri {uri}")
    return out
