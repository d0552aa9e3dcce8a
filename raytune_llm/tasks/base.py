"""What a task is: everything the data preparation, the training loop, evaluation and export need to know about
one kind of fine-tuning, so that none of them branches on the task's name; and the registry tasks register in.

A task is stateless; its methods take what they need. Tokenised splits carry the model's input columns plus
`labels`; a task may keep extra per-row columns for evaluation (`extra_columns`, e.g. the reference answer of a
generation task), which never reach the model.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from raytune_llm.core.errors import Problem, UserError
from raytune_llm.core.registry import Registry

if TYPE_CHECKING:
    import datasets
    import torch

    from raytune_llm.schema import DataConfig, ExperimentConfig, GenerationConfig

MODEL_COLUMNS = ["input_ids", "attention_mask", "token_type_ids", "labels"]
INDEX = "_index"  # the row's position in its split, which the evaluation loop adds to each row a task sees


@dataclass
class EvalBatch:
    """One eval batch's contribution: summed loss over `count` loss terms, and a prediction and a reference per
    row (any JSON-able value: a class id, a score, a tag sequence, an answer)."""

    loss_sum: float
    count: int
    preds: list[Any]
    refs: list[Any]


@dataclass(frozen=True)
class ChanceLevel:
    """The metric and value a trial that learnt nothing scores; the stability guard stops trials stuck there.
    `loss`: the eval loss of the best input-independent prediction (the label distribution's entropy, the
    targets' variance), where the task has one: a trial below it has learnt something even while its chance
    metric has not moved yet."""

    metric: str
    value: float
    loss: float | None = None


def label_entropy(labels: list[int]) -> float:
    """Cross-entropy (nats) of always predicting the label frequencies: the best constant classifier's loss."""
    counts = Counter(labels)
    n = len(labels)
    return -sum(c / n * math.log(c / n) for c in counts.values())


class Task:
    name: str = ""
    peft_task_type: str = ""  # peft.TaskType value
    extra_columns: tuple[str, ...] = ()
    # What an unlabelled test row is encoded with (its predictions are exported, not scored); None: the task does
    # not accept unlabelled test splits.
    placeholder_label: Any = None

    def unlabelled(self, ds: datasets.Dataset, cfg: DataConfig) -> bool:
        """A split without labels: no label column, or only -1/None (how GLUE ships its test splits)."""
        if self.placeholder_label is None:
            return False
        if cfg.label_column not in ds.column_names:
            return True
        return all(v is None or v == -1 for v in ds[cfg.label_column])

    def with_placeholder_labels(self, ds: datasets.Dataset, cfg: DataConfig) -> datasets.Dataset:
        if cfg.label_column in ds.column_names:
            ds = ds.remove_columns(cfg.label_column)
        return ds.add_column(cfg.label_column, [self.placeholder_label] * len(ds))

    def render_prediction(self, pred: Any, label_names: list[str]) -> Any:
        """A prediction as a user reads it (a label name rather than its id)."""
        return pred

    # -------------------------------------------------------------- data
    def required_columns(self, cfg: DataConfig) -> list[str]:
        raise NotImplementedError

    def text_columns(self, cfg: DataConfig) -> list[str]:
        """The columns every row must have text in."""
        return [c for c in (cfg.text_column, cfg.text_pair_column) if c]

    def check_train(self, train: datasets.Dataset, cfg: DataConfig, label_names: list[str]) -> None:
        """Refuse, before any trial, a tokenised train split nothing can be learnt from (default: anything goes)."""

    def label_names(self, cfg: DataConfig, train: datasets.Dataset) -> list[str]:
        return []

    def encode(self, ds: datasets.Dataset, cfg: DataConfig, tokenizer: Any, max_length: int, label_names: list[str],
               split: str) -> datasets.Dataset:
        raise NotImplementedError

    def chance_level(self, eval_ds: datasets.Dataset, label_names: list[str]) -> ChanceLevel | None:
        return None

    # -------------------------------------------------------------- model
    def auto_class(self) -> Any:
        raise NotImplementedError

    def model_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        return {}

    def init_head(self, model: torch.nn.Module, train: datasets.Dataset) -> None:
        """Adjust a freshly built model's head to the training data before the first step (default: nothing)."""

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, return_tensors="pt")

    # -------------------------------------------------------------- training and evaluation
    # A token-level loss is a mean over a batch's tokens, whose number differs between DDP ranks: the training loop
    # then weighs each rank's mean by its share of the tokens (see `loss_terms`), so that the gradient is the
    # mean over all the global batch's tokens, as in one process.
    token_level: bool = False

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        raise NotImplementedError

    def loss_terms(self, labels: torch.Tensor) -> int:
        """How many terms the batch's loss averages over (rows; tokens for a token-level loss)."""
        return int(labels.shape[0])

    def eval_batch(self, model: Any, batch: dict[str, torch.Tensor], rows: list[dict[str, Any]], autocast: dict,
                   tokenizer: Any, generation: GenerationConfig) -> EvalBatch:
        raise NotImplementedError

    def metrics(self, preds: list[Any], refs: list[Any], label_names: list[str], loss: float) -> dict[str, float]:
        raise NotImplementedError

    def same_prediction(self, a: Any, b: Any) -> bool:
        """Whether an exported model's prediction matches the trial's (exact, except where a task says)."""
        return a == b

    # -------------------------------------------------------------- validation
    # The train.augment methods that keep this task's labels true (None: all of them), and why the others do not;
    # why train.consistency does not apply ("": it does).
    augment_methods: tuple[str, ...] | None = None
    augment_refusal: str = ""
    consistency_refusal: str = ""

    def problems(self, cfg: ExperimentConfig) -> list[Problem]:
        """What this task cannot be combined with in `cfg` (what it reports is checked by the schema: TASK_METRICS)."""
        return self.lever_problems(cfg)

    def lever_problems(self, cfg: ExperimentConfig) -> list[Problem]:
        """The augmentation and consistency settings this task refuses, for every value the space can sample."""
        from raytune_llm.schema.space import possible_values

        def where(path: str) -> str:
            return f"search.space.{path}" if path in cfg.search.space else f"train.{path}"

        problems = []
        allowed = ("none", *self.augment_methods) if self.augment_methods is not None else None
        refused = [m for m in possible_values(cfg, "augment.method") if allowed is not None and m not in allowed]
        if refused:
            problems.append(Problem(where("augment.method"), f"{', '.join(map(str, refused))}: {self.augment_refusal}; "
                                    f"use {' or '.join(allowed)}"))
        if self.consistency_refusal and any(v for v in possible_values(cfg, "consistency.alpha")):
            problems.append(Problem(where("consistency.alpha"), f"{self.consistency_refusal}; set it to 0"))
        return problems


def _known(name: str, cls: Any) -> str | None:
    from raytune_llm.schema import Task as TaskName

    if name not in {t.value for t in TaskName}:
        return f"not a value of schema.Task {[t.value for t in TaskName]}"
    return None if getattr(cls, "name", None) == name else f"its `name` must be {name!r}"


tasks: Registry[type[Task]] = Registry("task", check=_known)


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k != "labels"}


def require_columns(ds: datasets.Dataset, needed: list[str], split: str, hint: str) -> None:
    missing = [c for c in needed if c not in ds.column_names]
    if missing:
        raise UserError(f"data: split {split!r} ({len(ds)} rows) has no column {missing[0]!r}; it has "
                        f"{ds.column_names}; {hint}")


def require_text(ds: datasets.Dataset, columns: list[str], split: str) -> None:
    """Every row has text in `columns` (a string, or a list of words): a null, an empty string or an empty word list
    would otherwise end in the tokenizer's TypeError, or train on nothing."""
    def blank(value: Any) -> bool:
        return value is None or (value.strip() == "" if isinstance(value, str) else value == [])

    for column in columns:
        empty = [i for i, value in enumerate(ds[column]) if blank(value)]
        if empty:
            raise UserError(f"data: split {split!r} column {column!r} has {len(empty)} of {len(ds)} rows empty or "
                            f"missing (the first: row {empty[0]}); fill or drop them")


Fn = TypeVar("Fn", bound=Callable[..., Any])


def no_grad(fn: Fn) -> Fn:
    """`torch.no_grad()` as a decorator that imports torch only when called: task modules import nothing heavy, so
    that `validate` can ask a task to check itself."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
