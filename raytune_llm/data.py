"""Load a labeled dataset, map its labels, and tokenise it once per search into an Arrow cache.

Trials only ever read the cache (`datasets.load_from_disk`, memory-mapped), so tokenisation never runs per
trial. Sources: a directory of split files (`train.parquet`, `validation.csv`, `test.jsonl`, ...), a
`save_to_disk` directory, a hub dataset id, or a built-in (`builtin:bbc_news`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raytune_llm import builtins
from raytune_llm.config import DataConfig, ModelConfig
from raytune_llm.errors import UserError

if TYPE_CHECKING:
    import datasets

_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}
MODEL_COLUMNS = ["input_ids", "attention_mask", "token_type_ids", "labels"]


@dataclass(frozen=True)
class PreparedData:
    path: Path
    label_names: list[str]
    sizes: dict[str, int]
    majority_baseline: float  # eval accuracy of always predicting the most common eval label


def _split_files(root: Path) -> dict[str, str]:
    files = {}
    for f in sorted(root.iterdir()):
        if f.suffix in _FORMATS and f.is_file():
            files[f.stem] = str(f)
    return files


def _load_file(kind: str, split: str, path: str) -> datasets.Dataset:
    import datasets

    try:
        return datasets.load_dataset(kind, data_files={split: path}, split=split)
    except Exception as exc:  # datasets wraps reader errors; the root cause is what the user can act on
        if kind == "parquet":
            import pyarrow.parquet as pq

            if pq.read_metadata(path).num_rows == 0:
                raise UserError(f"data: split {split!r} is empty ({path})") from None
        cause = exc
        while cause.__cause__ or cause.__context__:
            cause = cause.__cause__ or cause.__context__
        raise UserError(f"data: cannot read {path}: {cause}") from None


def load_raw(cfg: DataConfig) -> datasets.DatasetDict:
    import datasets

    if cfg.source.startswith(builtins.PREFIX):
        splits = builtins.datasets.get(cfg.source.removeprefix(builtins.PREFIX))()
        return datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})
    root = Path(cfg.source).expanduser()
    if root.is_dir():
        if (root / "dataset_dict.json").is_file():
            return datasets.load_from_disk(str(root))
        files = _split_files(root)
        if not files:
            raise UserError(
                f"data.source: {root} has no split files (train.parquet, validation.csv, test.jsonl, ...)"
            )
        kinds = {_FORMATS[Path(f).suffix] for f in files.values()}
        if len(kinds) > 1:
            raise UserError(f"data.source: {root} mixes file formats {sorted(kinds)}; use one format")
        kind = kinds.pop()
        # One split at a time: splits whose schemas differ a little (an index column) still load.
        return datasets.DatasetDict({split: _load_file(kind, split, f) for split, f in files.items()})
    if root.exists() or cfg.source.startswith((".", "/", "~")):
        raise UserError(f"data.source: {cfg.source} is not a directory of split files; check the path")
    try:
        return datasets.load_dataset(cfg.source, cfg.subset)
    except Exception as exc:  # the hub client raises many types; the message is what the user needs
        raise UserError(f"data.source: could not load hub dataset {cfg.source!r}: {exc}") from None


def _require_split(raw: datasets.DatasetDict, split: str, key: str) -> datasets.Dataset:
    if split not in raw:
        raise UserError(f"data.{key}: no split {split!r}; the data has {sorted(raw)}")
    ds = raw[split]
    if len(ds) == 0:
        raise UserError(f"data.{key}: split {split!r} is empty")
    return ds


def label_names(cfg: DataConfig, train: datasets.Dataset) -> list[str]:
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
        "for regression use a regression task"
    )


def _label_ids(values: list[Any], names: list[str], split: str, column: str) -> list[int]:
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


def prepare(cfg: DataConfig, model: ModelConfig, tokenizer_path: str, out: Path, seed: int) -> PreparedData:
    """Tokenise train/eval(/test) once and save them as an Arrow dataset at `out`."""
    import datasets
    from transformers import AutoTokenizer

    raw = load_raw(cfg)
    splits = {"train": _require_split(raw, cfg.train_split, "train_split")}
    splits["eval"] = _require_split(raw, cfg.eval_split, "eval_split")
    if cfg.test_split and cfg.test_split in raw and len(raw[cfg.test_split]):
        splits["test"] = raw[cfg.test_split]
    for name, ds in splits.items():
        needed = [c for c in (cfg.text_column, cfg.text_pair_column, cfg.label_column) if c]
        missing = [c for c in needed if c not in ds.column_names]
        if missing:
            raise UserError(
                f"data: split {name!r} has no column {missing[0]!r}; it has {ds.column_names}; "
                "set data.text_column / data.text_pair_column / data.label_column"
            )
    names = label_names(cfg, splits["train"])
    limits = {"train": cfg.max_train_samples, "eval": cfg.max_eval_samples}
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        pair = batch[cfg.text_pair_column] if cfg.text_pair_column else None
        enc = tokenizer(batch[cfg.text_column], pair, truncation=True, max_length=model.max_length)
        return dict(enc)

    encoded = {}
    for name, ds in splits.items():
        if limits.get(name) and limits[name] < len(ds):
            ds = ds.shuffle(seed=seed).select(range(limits[name]))
        labels = _label_ids(ds[cfg.label_column], names, name, cfg.label_column)
        ds = ds.map(encode, batched=True, desc=f"tokenising {name}")
        ds = ds.add_column("labels", labels)
        encoded[name] = ds.select_columns([c for c in MODEL_COLUMNS if c in ds.column_names])
    dd = datasets.DatasetDict(encoded)
    dd.save_to_disk(str(out))
    eval_counts = Counter(encoded["eval"]["labels"])
    prepared = PreparedData(
        path=out,
        label_names=names,
        sizes={k: len(v) for k, v in encoded.items()},
        majority_baseline=max(eval_counts.values()) / len(encoded["eval"]),
    )
    (out / "labels.json").write_text(json.dumps({"label_names": names, "sizes": prepared.sizes}, indent=2))
    return prepared
