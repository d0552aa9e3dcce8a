"""Token classification / NER with BIO tags: a tag per word, aligned to subwords (the first subword of a word
carries its tag, the rest are ignored by the loss), scored per entity as conlleval and seqeval do."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raytune_llm.core.errors import UserError
from raytune_llm.tasks.base import ChanceLevel, EvalBatch, Task, model_inputs, tasks
from raytune_llm.tasks.sequence_classification import label_ids

if TYPE_CHECKING:
    import datasets
    import torch

    from raytune_llm.schema import DataConfig, GenerationConfig

IGNORE = -100


def entities(tags: list[str]) -> set[tuple[str, int, int]]:
    """(type, first, last) spans of a BIO sequence. Like conlleval (seqeval's default mode), an I- tag that does not
    continue an entity of its type starts a new one."""
    spans, start, kind = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        continues = prefix == "I" and kind == label
        if kind is not None and not continues:
            spans.add((kind, start, i - 1))
            kind = None
        if prefix in ("B", "I") and not continues:
            start, kind = i, label
    return spans


def entity_scores(pred_seqs: list[list[str]], gold_seqs: list[list[str]]) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1 over sentences, plus per-type F1 and token accuracy."""
    tp = fp = fn = 0
    per_type: dict[str, Counter] = {}
    correct = total = 0
    for pred, gold in zip(pred_seqs, gold_seqs):
        p, g = entities(pred), entities(gold)
        tp, fp, fn = tp + len(p & g), fp + len(p - g), fn + len(g - p)
        for name, spans in (("tp", p & g), ("fp", p - g), ("fn", g - p)):
            for kind, _, _ in spans:
                per_type.setdefault(kind, Counter())[name] += 1
        correct += sum(a == b for a, b in zip(pred, gold))
        total += len(gold)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out = {"precision": precision, "recall": recall, "f1": f1, "accuracy": correct / total if total else 0.0}
    for kind, c in sorted(per_type.items()):
        denom = 2 * c["tp"] + c["fp"] + c["fn"]
        out[f"f1_{kind}"] = 2 * c["tp"] / denom if denom else 0.0
    return out


@tasks.register("token_classification")
class TokenClassification(Task):
    name = "token_classification"
    peft_task_type = "TOKEN_CLS"
    token_level = True
    augment_methods = ("synonym", "cutoff")
    augment_refusal = ("these edits move, drop or add words, and the tags would no longer sit on their words "
                       "(token classification keeps its tags aligned with synonym replacement and token cutoff only)")

    def loss_terms(self, labels: torch.Tensor) -> int:
        return int((labels != IGNORE).sum())

    def required_columns(self, cfg: DataConfig) -> list[str]:
        return [cfg.text_column, cfg.label_column]

    def text_columns(self, cfg: DataConfig) -> list[str]:
        return [cfg.text_column]  # a list of words per row

    def label_names(self, cfg: DataConfig, train: datasets.Dataset) -> list[str]:
        """Tag names in id order: data.labels, a labels.json ({"id2label": ...}) next to the data, or the
        dataset's Sequence(ClassLabel) feature."""
        if cfg.labels:
            return list(cfg.labels)
        labels_file = Path(cfg.source).expanduser() / "labels.json"
        if labels_file.is_file():
            id2label = json.loads(labels_file.read_text()).get("id2label", {})
            return [id2label[str(i)] for i in range(len(id2label))]
        feature = getattr(train.features[cfg.label_column], "feature", None)
        if getattr(feature, "names", None):
            return list(feature.names)
        raise UserError(f"data.labels: list the tag names in id order (e.g. [O, B-PER, I-PER, ...]); "
                        f"{cfg.source} has no labels.json and column {cfg.label_column!r} does not name its tags")

    def encode(self, ds: datasets.Dataset, cfg: DataConfig, tokenizer: Any, max_length: int, label_names: list[str],
               split: str) -> datasets.Dataset:
        outside = [i for i, n in enumerate(label_names) if not n.startswith(("B-", "I-"))]
        if len(outside) != 1:
            raise UserError(f"data.labels: BIO tags need exactly one tag without a B-/I- prefix (O); got {label_names}")
        uneven = [i for i, (words, tags) in enumerate(zip(ds[cfg.text_column], ds[cfg.label_column]))
                  if len(words) != len(tags or [])]
        if uneven:
            raise UserError(f"data: split {split!r} has {len(uneven)} of {len(ds)} rows whose {cfg.label_column!r} "
                            f"tags are not one per word of {cfg.text_column!r} (the first: row {uneven[0]}); fix or "
                            "drop them")

        def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
            enc = tokenizer(batch[cfg.text_column], is_split_into_words=True, truncation=True, max_length=max_length)
            aligned = []
            for row, tags in enumerate(batch[cfg.label_column]):
                ids = label_ids(list(tags), label_names, split, cfg.label_column)
                previous, labels = None, []
                for word in enc.word_ids(row):
                    labels.append(IGNORE if word is None or word == previous else ids[word])
                    previous = word
                aligned.append(labels)
            return {**enc, "labels": aligned}

        return ds.map(encode, batched=True, desc=f"tokenising {split}")

    def chance_level(self, eval_ds: datasets.Dataset, label_names: list[str]) -> ChanceLevel:
        return ChanceLevel("eval_f1", 0.0)  # tagging everything O (the majority tag) finds no entity

    def auto_class(self) -> Any:
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification

    def model_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        return {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
                "label2id": {n: i for i, n in enumerate(label_names)}}

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE, return_tensors="pt")

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        import torch.nn.functional as F

        return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE,
                               label_smoothing=label_smoothing)

    def eval_batch(self, model: Any, batch: dict[str, torch.Tensor], rows: list[dict[str, Any]], autocast: dict,
                   tokenizer: Any, generation: GenerationConfig) -> EvalBatch:
        import torch
        import torch.nn.functional as F

        with torch.autocast(**autocast):
            logits = model(**model_inputs(batch)).logits.float()
        labels = batch["labels"]
        loss = float(F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum"))
        keep = labels != IGNORE
        preds = [row[mask].tolist() for row, mask in zip(logits.argmax(-1), keep)]
        refs = [row[mask].tolist() for row, mask in zip(labels, keep)]
        return EvalBatch(loss, int(keep.sum()), preds, refs)

    def metrics(self, preds: list[Any], refs: list[Any], label_names: list[str], loss: float) -> dict[str, float]:
        def names(seqs: list[list[int]]) -> list[list[str]]:
            return [[label_names[i] for i in seq] for seq in seqs]

        return {**entity_scores(names(preds), names(refs)), "loss": loss}
