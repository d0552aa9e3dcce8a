"""The data tokenised once per search into an Arrow cache, the task's way (its columns, labels and chance level).

Trials only ever read the cache (`datasets.load_from_disk`, memory-mapped), so tokenisation never runs per trial.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from raytune_llm.schema import DataConfig, ModelConfig
from raytune_llm.sources.data import load_raw, read_splits
from raytune_llm.tasks import MODEL_COLUMNS, get_task
from raytune_llm.tasks.base import require_columns, require_text


@dataclass(frozen=True)
class PreparedData:
    path: Path
    label_names: list[str]
    sizes: dict[str, int]
    chance_value: float  # what a model that learnt nothing scores on `chance_metric` (e.g. MCC 0)
    chance_metric: str = "eval_accuracy"  # "" when the task has no chance level (causal LM)
    chance_loss: float | None = None  # the eval loss of the best constant prediction, where the task has one
    unlabelled: list[str] = field(default_factory=list)  # splits without labels (a GLUE test split)


def tokenise(cfg: DataConfig, model: ModelConfig, tokenizer_path: str, out: Path, seed: int,
             task_name: str = "sequence_classification") -> PreparedData:
    """Tokenise train/eval(/test) once, the task's way, and save them as an Arrow dataset at `out`."""
    import datasets
    from transformers import AutoTokenizer

    task = get_task(task_name)
    splits = read_splits(load_raw(cfg), cfg, seed)
    unlabelled = []
    if "test" in splits and task.unlabelled(splits["test"], cfg):
        # GLUE-style test split: no labels to score on; export writes its predictions instead.
        splits["test"] = task.with_placeholder_labels(splits["test"], cfg)
        unlabelled.append("test")
    for name, ds in splits.items():
        require_columns(ds, task.required_columns(cfg), name,
                        "set data.text_column / data.text_pair_column / data.label_column")
    names = task.label_names(cfg, splits["train"])
    limits = {"train": cfg.max_train_samples, "eval": cfg.max_eval_samples}
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    encoded = {}
    for name, ds in splits.items():
        if limits.get(name) and limits[name] < len(ds):
            ds = ds.shuffle(seed=seed).select(range(limits[name]))
        require_text(ds, task.text_columns(cfg), name)
        ds = task.encode(ds, cfg, tokenizer, model.max_length, names, name)
        # Train rows feed the model only; eval/test rows keep what the task's evaluation reads.
        keep = MODEL_COLUMNS + ([] if name == "train" else list(task.extra_columns))
        encoded[name] = ds.select_columns([c for c in keep if c in ds.column_names])
    task.check_train(encoded["train"], cfg, names)
    dd = datasets.DatasetDict(encoded)
    dd.save_to_disk(str(out))
    chance = task.chance_level(encoded["eval"], names)
    prepared = PreparedData(
        path=out,
        label_names=names,
        sizes={k: len(v) for k, v in encoded.items()},
        chance_value=chance.value if chance else 0.0,
        chance_metric=chance.metric if chance else "",
        chance_loss=chance.loss if chance else None,
        unlabelled=unlabelled,
    )
    (out / "labels.json").write_text(json.dumps({"label_names": names, "sizes": prepared.sizes,
                                                 "unlabelled": unlabelled}, indent=2))
    return prepared
