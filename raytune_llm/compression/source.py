"""What `compress` starts from: an export folder (or a run's pick, exported first), its run's prepared data, and
the exported model as one full model (a LoRA adapter merged into its base)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raytune_llm.core.errors import UserError
from raytune_llm.runs.layout import RunInfo, read_info
from raytune_llm.schema import ExperimentConfig, PeftMethod, TrainConfig


@dataclass
class Source:
    export_dir: Path
    info: RunInfo  # the run whose prepared data (splits, tokenizer) every variant is scored on
    train: TrainConfig  # the pick's training settings (best_config.yaml)
    method: PeftMethod

    @property
    def task(self) -> str:
        return self.info.experiment.task.value

    def load_model(self) -> Any:
        """The exported model, full weights in fp32 (LoRA merged into the base), in eval mode."""
        import torch

        from raytune_llm.core.storage import node_copy
        from raytune_llm.models.build import load_trained
        from raytune_llm.tasks import get_task

        if (self.export_dir / "model").is_dir():
            model = get_task(self.task).auto_class().from_pretrained(str(self.export_dir / "model"),
                                                                     dtype=torch.float32)
        else:
            cfg = self.info.experiment
            model = load_trained(node_copy(self.info.model_path, self.info.run_id), self.export_dir / "adapter",
                                 self.method, self.info.label_names, self.task,
                                 trust_remote_code=cfg.model.trust_remote_code).merge_and_unload()
        return model.eval()


def _run_of(export_dir: Path, metrics: dict[str, Any]) -> Path:
    """The run an export came from: metrics.json's `run_dir`, else the folder above its checkpoint that holds the
    run's info (exports made before `run_dir` was written)."""
    if metrics.get("run_dir") and Path(metrics["run_dir"]).is_dir():
        return Path(metrics["run_dir"])
    for parent in Path(metrics.get("checkpoint", "")).parents:
        try:
            read_info(parent)
            return parent
        except UserError:
            continue
    raise UserError(f"{export_dir}: cannot find the run it was exported from (its prepared data scores the "
                    "variants); pass --run RUN_DIR")


def open_source(export_dir: Path, run_dir: Path | None = None) -> Source:
    """The export to compress, refusing what cannot be compressed in one line."""
    metrics_file = export_dir / "metrics.json"
    if not metrics_file.is_file():
        raise UserError(f"{export_dir} is not a raytune-llm export (no metrics.json); pass the folder `export` wrote "
                        "or --run RUN_DIR to export the run's pick first")
    metrics = json.loads(metrics_file.read_text())
    info = read_info(run_dir or _run_of(export_dir, metrics))
    import yaml

    cfg = ExperimentConfig.model_validate(yaml.safe_load((export_dir / "best_config.yaml").read_text()))
    method = cfg.train.peft.method
    if method in (PeftMethod.prompt_tuning, PeftMethod.prefix_tuning):
        raise UserError(f"{export_dir}: a {method.value} export is the frozen base model plus virtual tokens; "
                        "there is no merged model to compress (compress the base model's own export instead)")
    if not (export_dir / "model").is_dir() and not (export_dir / "adapter").is_dir():
        raise UserError(f"{export_dir} has neither model/ nor adapter/; export the run again")
    return Source(export_dir, info, cfg.train, method)
