"""Read a labeled dataset's splits: a directory of split files (`train.parquet`, `validation.csv`, `test.jsonl`,
...), a `save_to_disk` directory, a hub dataset id, or a built-in (`builtin:bbc_news`); the eval split held out of
train when the data has none. Tokenising them, the task's way, is raytune_llm.runs.tokenise."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from raytune_llm.core.errors import UserError
from raytune_llm.schema import DataConfig
from raytune_llm.sources import builtins

if TYPE_CHECKING:
    import datasets

_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}


_METADATA_FILES = {"labels.json"}  # tag names of a token-classification folder, not a split


def _split_files(root: Path) -> dict[str, str]:
    files = {}
    for f in sorted(root.iterdir()):
        if f.suffix in _FORMATS and f.is_file() and f.name not in _METADATA_FILES:
            files[f.stem] = str(f)
    return files


def _parquet_rows(path: str) -> int | None:
    """The rows a Parquet file's footer says it holds; None when it has no readable footer (corrupt, truncated)."""
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows
    except Exception:  # pyarrow raises several types for a bad footer; None is the answer to all of them
        return None


@contextmanager
def _quiet_datasets_log() -> Iterator[None]:
    """datasets logs its own line ("Failed to read file ...") before it raises: the UserError below says it once."""
    from datasets.utils import logging as ds_logging

    level = ds_logging.get_verbosity()
    ds_logging.set_verbosity(ds_logging.CRITICAL)
    try:
        yield
    finally:
        ds_logging.set_verbosity(level)


def _load_file(kind: str, split: str, path: str) -> datasets.Dataset:
    import datasets

    try:
        with _quiet_datasets_log():
            return datasets.load_dataset(kind, data_files={split: path}, split=split)
    except Exception as exc:  # datasets wraps reader errors; the root cause is what the user can act on
        if kind == "parquet" and _parquet_rows(path) == 0:
            raise UserError(f"data: split {split!r} is empty ({path})") from None
        cause = exc
        while cause.__cause__ or cause.__context__:
            cause = cause.__cause__ or cause.__context__
        raise UserError(f"data: cannot read split {split!r} from {path}: {str(cause).splitlines()[0]}; check the "
                        "file (corrupt, truncated, or not the format its name says)") from None


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


def read_splits(raw: datasets.DatasetDict, cfg: DataConfig, seed: int) -> dict[str, datasets.Dataset]:
    train = _require_split(raw, cfg.train_split, "train_split")
    if cfg.eval_split in raw and cfg.eval_holdout:
        raise UserError(f"data.eval_holdout: the data has an eval split {cfg.eval_split!r}, which trials are scored "
                        "on; remove eval_holdout, or point data.eval_split at a split the data lacks")
    if cfg.eval_split not in raw and cfg.eval_holdout:
        if cfg.eval_holdout >= len(train):
            raise UserError(f"data.eval_holdout: {cfg.eval_holdout} rows asked of a train split of {len(train)}")
        parts = train.train_test_split(test_size=cfg.eval_holdout, seed=seed)
        splits = {"train": parts["train"], "eval": parts["test"]}
    else:
        splits = {"train": train, "eval": _require_split(raw, cfg.eval_split, "eval_split")}
    if cfg.test_split and cfg.test_split in raw and len(raw[cfg.test_split]):
        splits["test"] = raw[cfg.test_split]
    return splits


@contextmanager
def quiet_progress() -> Iterator[None]:
    """Hide the datasets library's progress bars (tokenising, saving) for a moment."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
