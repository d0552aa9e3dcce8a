"""The layout of a run directory, readable without Ray (status and export must be instant).

RUN_DIR = <run.storage_path>/<run.name>   (a local/shared folder, or a cloud URI: see core/storage.py)
  raytune_llm.json    what every trial shares: model and tokenizer paths, labels, data sizes
  experiment.yaml     the validated experiment config
  prepared/           tokenizer/ and data/ (the Arrow cache tokenised once per search)
  train/<trial_id>/   Ray Train runs (resources.executor train): checkpoint_* folders of each trial
  <trial dirs>        Ray Tune: params.json, result.json (one JSON report per line), error.txt, and an
                      in-process trial's checkpoint_* folders
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from raytune_llm.core.errors import UserError
from raytune_llm.core.storage import is_uri, join, mirror
from raytune_llm.schema import ExperimentConfig

META_FILE = "raytune_llm.json"
CONFIG_FILE = "experiment.yaml"
COMPRESSION_DIR = "compression"  # <stamp>.json: each `compress` of the run's pick (the report shows the latest)


@dataclass
class RunInfo:
    config: dict
    model_path: str
    tokenizer_path: str
    data_path: str
    label_names: list[str]
    sizes: dict[str, int]
    chance_value: float  # what a trial that learnt nothing scores on `chance_metric`
    chance_metric: str = "eval_accuracy"  # "" = the task has no chance level
    chance_loss: float | None = None  # the eval loss of the best constant prediction (stability guard)
    unlabelled_splits: list[str] = field(default_factory=list)  # e.g. a GLUE test split: predictions, no scores
    run_id: str = ""  # unique per `search`: a run made again under the same name is another run
    run_root: str = ""  # where the run lives: a local path or a URI (older runs: filled in by read_info)

    @property
    def experiment(self) -> ExperimentConfig:
        return ExperimentConfig.model_validate(self.config)


def run_root_for(cfg: ExperimentConfig) -> str:
    if is_uri(cfg.run.storage_path):
        return join(cfg.run.storage_path, cfg.run.name)
    return str(Path(cfg.run.storage_path).expanduser().resolve() / cfg.run.name)


def open_run(run: str | Path) -> Path:
    """The local folder to read a run from: the folder itself, or a fresh mirror of a run on a cloud URI."""
    return mirror(str(run)) if is_uri(run) else Path(run).expanduser().resolve()


def write_info(run_dir: Path, info: RunInfo) -> None:
    (run_dir / META_FILE).write_text(json.dumps(asdict(info), indent=2))


def read_info(run_dir: Path) -> RunInfo:
    meta = run_dir / META_FILE
    if not meta.is_file():
        raise UserError(f"{run_dir} is not a raytune-llm run (no {META_FILE}); pass the folder `search` printed")
    fields = json.loads(meta.read_text())
    if "majority_baseline" in fields:  # runs made before the chance level moved to class-balanced metrics
        fields["chance_value"] = fields.pop("majority_baseline")
    info = RunInfo(**fields)
    info.run_root = info.run_root or str(run_dir)
    return info
