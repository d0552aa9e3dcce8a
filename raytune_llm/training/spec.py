"""The training loop's contract: what a run is given (`RunSpec`, plain data that crosses process boundaries) and
who it reports to (`Session`, one per executor: a Tune trial, a Ray Train worker, a bare process). Torch-free, so
that the search driver and the executors can hold a run's spec without importing torch before a trial runs."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch


@dataclass
class RunSpec:
    """Everything a worker needs, as plain data (it crosses process boundaries)."""

    model_path: str
    tokenizer_path: str
    data_path: str
    label_names: list[str]
    train: dict[str, Any]
    metric: str = "eval_accuracy"
    mode: str = "max"
    torch_threads: int | None = 1
    stability: dict[str, Any] = field(default_factory=dict)
    task: str = "sequence_classification"
    chance_metric: str = "eval_accuracy"  # "" = the task has no chance level
    chance_value: float | None = None  # None: worked out from the eval split
    chance_loss: float | None = None  # the eval loss of the best constant prediction, where the task has one
    population_board: str = ""  # the search's population board (raytune_llm.actors.population); "" = none
    strategy: str = "ddp"  # resources.strategy: how several workers split the work (ddp | fsdp)
    run_id: str = ""  # which run's inputs a node's cache holds (see core.storage.node_copy)
    model_revision: str | None = None  # model.revision and model.trust_remote_code, for every from_pretrained
    trust_remote_code: bool = False
    generation: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)  # when the trial started, for start-up cost
    # Compression's training runs (raytune_llm.compression): model_path is a fine-tuned model of this task whose
    # head is kept; its zero weights stay zero (a pruned model's recovery); a teacher's soft targets (distillation).
    trained_head: bool = False
    hold_zeros: bool = False
    teacher_path: str = ""
    distill_temperature: float = 2.0
    distill_alpha: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Session(Protocol):
    rank: int
    world_size: int
    device: torch.device
    node_id: str

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None: ...

    def restore_dir(self) -> Path | None: ...

    def peers_learnt(self, board: str, fraction: float, above_chance: bool) -> bool | None:
        """Post this evaluation to the search's population; whether another trial was above chance by this
        fraction of its budget (the same answer on every rank), or None when there is no population."""
        ...


def run_steps(train: Any, train_rows: int) -> int:
    """A run's optimizer steps, as the training loop counts them: `train.max_steps`, else `epochs` passes of whole
    batches (the last partial one dropped). `train`: a schema TrainConfig."""
    return train.max_steps or max(1, math.ceil(train.epochs * max(1, train_rows // train.batch_size)))
