"""Regression: one real-valued target per text or text pair (e.g. STS-B similarity 0-5). Scored by Pearson and
Spearman correlation; a model that learnt nothing correlates at 0."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from raytune_llm.core.errors import UserError
from raytune_llm.tasks.base import ChanceLevel, EvalBatch, model_inputs, tasks
from raytune_llm.tasks.sequence_classification import SequenceClassification, tokenise_texts

if TYPE_CHECKING:
    import datasets
    import torch

    from raytune_llm.schema import DataConfig, GenerationConfig


def pearson(x: list[float], y: list[float]) -> float:
    n = len(x)
    if n < 2:
        return 0.0
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx, syy = sum((a - mx) ** 2 for a in x), sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0  # a constant predictor correlates at 0


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank (as scipy.stats.rankdata)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: list[float], y: list[float]) -> float:
    return pearson(ranks(x), ranks(y))


@tasks.register("regression")
class Regression(SequenceClassification):
    """Sequence classification's inputs and model class with one real-valued output and MSE."""

    name = "regression"
    placeholder_label = 0.0

    def render_prediction(self, pred: Any, label_names: list[str]) -> Any:
        return pred

    def label_names(self, cfg: DataConfig, train: datasets.Dataset) -> list[str]:
        return []

    def encode(self, ds: datasets.Dataset, cfg: DataConfig, tokenizer: Any, max_length: int, label_names: list[str],
               split: str) -> datasets.Dataset:
        values = ds[cfg.label_column]
        bad = [v for v in values if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)]
        if bad:
            raise UserError(f"data.label_column: regression needs finite numbers; split {split!r} column "
                            f"{cfg.label_column!r} has {len(bad)} others, e.g. {bad[0]!r}")

        return tokenise_texts(ds, cfg, tokenizer, max_length, split).add_column("labels", [float(v) for v in values])

    def check_train(self, train: datasets.Dataset, cfg: DataConfig, label_names: list[str]) -> None:
        if len(set(train["labels"])) < 2:
            raise UserError(f"data: split 'train' column {cfg.label_column!r} has the same target in all {len(train)} "
                            "rows: there is nothing to learn; check data.label_column and the split")

    def chance_level(self, eval_ds: datasets.Dataset, label_names: list[str]) -> ChanceLevel:
        return ChanceLevel("eval_pearson", 0.0, statistics.pvariance(eval_ds["labels"]))  # MSE of the mean

    def model_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        return {"num_labels": 1, "problem_type": "regression"}

    def init_head(self, model: torch.nn.Module, train: datasets.Dataset) -> None:
        """Start the output at the mean training target. A fresh head outputs ~0 against targets like 0-5, and the
        first hundreds of steps then go into learning that offset (predictions collapse to one value and the
        correlation sits near 0); starting at the mean leaves the gradient to the part that correlates."""
        import torch

        # The 1-output layer of the head; under PEFT also its trainable copy (modules_to_save).
        heads = [m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m.out_features == 1
                 and {"classifier", "out_proj", "score"} & set(name.split("."))]
        labels = train["labels"]
        with torch.no_grad():
            for head in heads:
                if head.bias is not None:
                    head.bias.fill_(sum(labels) / len(labels))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        import torch.nn.functional as F

        return F.mse_loss(logits.float().squeeze(-1), labels.float())

    def eval_batch(self, model: Any, batch: dict[str, torch.Tensor], rows: list[dict[str, Any]], autocast: dict,
                   tokenizer: Any, generation: GenerationConfig) -> EvalBatch:
        import torch
        import torch.nn.functional as F

        with torch.autocast(**autocast):
            scores = model(**model_inputs(batch)).logits.float().squeeze(-1)
        labels = batch["labels"].float()
        loss = float(F.mse_loss(scores, labels, reduction="sum"))
        return EvalBatch(loss, len(rows), scores.tolist(), labels.tolist())

    def metrics(self, preds: list[Any], refs: list[Any], label_names: list[str], loss: float) -> dict[str, float]:
        return {"pearson": pearson(preds, refs), "spearman": spearman(preds, refs), "mse": loss, "loss": loss}

    def same_prediction(self, a: Any, b: Any) -> bool:
        # DDP ranks and a single export process sum in different orders: equal up to float rounding.
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4)
