"""Sequence classification: one label per text or text pair (sentiment, topic, NLI, paraphrase)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raytune_llm.core.errors import UserError
from raytune_llm.sources import builtins
from raytune_llm.tasks.base import ChanceLevel, EvalBatch, Task, label_entropy, model_inputs, tasks
from raytune_llm.tasks.metrics import classification_metrics

if TYPE_CHECKING:
    import datasets
    import torch

    from raytune_llm.schema import DataConfig, GenerationConfig


def label_ids(values: list[Any], names: list[str], split: str, column: str) -> list[int]:
    """Map string labels by name and int labels by id; every label that maps to nothing is reported at once."""
    index = {n: i for i, n in enumerate(names)}
    ids, bad = [], []
    for v in values:
        if isinstance(v, str):
            i = index.get(v)
        elif isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(names):
            i = v
        else:
            i = None
        if i is None:
            bad.append(v)
        ids.append(i)
    if bad:
        examples = ", ".join(repr(v) for v in list(dict.fromkeys(bad))[:5])
        raise UserError(
            f"data.labels: {len(bad)} labels in split {split!r} (column {column!r}) cannot be mapped to "
            f"{names}: {examples}; list every label under data.labels"
        )
    return ids


def tokenise_texts(ds: datasets.Dataset, cfg: DataConfig, tokenizer: Any, max_length: int,
                   split: str) -> datasets.Dataset:
    """Tokenise `text_column` (with `text_pair_column` as the second segment when set), truncated to max_length."""

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        pair = batch[cfg.text_pair_column] if cfg.text_pair_column else None
        return dict(tokenizer(batch[cfg.text_column], pair, truncation=True, max_length=max_length))

    return ds.map(encode, batched=True, desc=f"tokenising {split}")


@tasks.register("sequence_classification")
class SequenceClassification(Task):
    name = "sequence_classification"
    peft_task_type = "SEQ_CLS"
    placeholder_label = 0

    def render_prediction(self, pred: Any, label_names: list[str]) -> Any:
        return label_names[pred]

    def required_columns(self, cfg: DataConfig) -> list[str]:
        return [c for c in (cfg.text_column, cfg.text_pair_column, cfg.label_column) if c]

    def label_names(self, cfg: DataConfig, train: datasets.Dataset) -> list[str]:
        """Names in label-id order: from the config, the dataset's ClassLabel, or the sorted string labels."""
        if cfg.labels:
            return list(cfg.labels)
        if builtin := builtins.builtin_labels(cfg.source):
            return builtin
        feature = train.features[cfg.label_column]
        if getattr(feature, "names", None):
            return list(feature.names)
        values = set(train[cfg.label_column])
        if all(isinstance(v, str) for v in values):
            return sorted(values)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return [str(i) for i in range(max(values) + 1)]
        raise UserError(
            f"data.label_column: labels must be ints or strings, got {sorted(map(repr, values))[:5]}; "
            "for real-valued targets use task: regression"
        )

    def encode(self, ds: datasets.Dataset, cfg: DataConfig, tokenizer: Any, max_length: int, label_names: list[str],
               split: str) -> datasets.Dataset:
        labels = label_ids(ds[cfg.label_column], label_names, split, cfg.label_column)
        return tokenise_texts(ds, cfg, tokenizer, max_length, split).add_column("labels", labels)

    def check_train(self, train: datasets.Dataset, cfg: DataConfig, label_names: list[str]) -> None:
        classes = set(train["labels"])
        if len(classes) < 2:
            only = label_names[next(iter(classes))] if classes else "none"
            raise UserError(f"data: split 'train' column {cfg.label_column!r} holds one class ({only!r}) in all "
                            f"{len(train)} rows: a classifier has nothing to learn; check data.label_column and the "
                            "split")

    def chance_level(self, eval_ds: datasets.Dataset, label_names: list[str]) -> ChanceLevel:
        # Matthews correlation: 0 for any constant prediction, however imbalanced the labels (accuracy's chance
        # level, the majority rate, moves with the imbalance and hides "not learnt yet" behind it).
        return ChanceLevel("eval_mcc", 0.0, label_entropy(eval_ds["labels"]))

    def auto_class(self) -> Any:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def model_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        return {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
                "label2id": {n: i for i, n in enumerate(label_names)}}

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)

    def eval_batch(self, model: Any, batch: dict[str, torch.Tensor], rows: list[dict[str, Any]], autocast: dict,
                   tokenizer: Any, generation: GenerationConfig) -> EvalBatch:
        import torch
        import torch.nn.functional as F

        with torch.autocast(**autocast):
            logits = model(**model_inputs(batch)).logits.float()
        loss = float(F.cross_entropy(logits, batch["labels"], reduction="sum"))
        return EvalBatch(loss, len(rows), logits.argmax(-1).tolist(), batch["labels"].tolist())

    def metrics(self, preds: list[Any], refs: list[Any], label_names: list[str], loss: float) -> dict[str, float]:
        return {**classification_metrics(preds, refs, label_names), "loss": loss}
