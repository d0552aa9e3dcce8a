"""Built-in assets and the data pipeline: splits, label mapping, and clear errors for bad data."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from raytune_llm.core.errors import UserError
from raytune_llm.runs.tokenise import tokenise
from raytune_llm.schema import DataConfig, ModelConfig
from raytune_llm.sources import builtins
from raytune_llm.sources.locate import locate_model
from tests.conftest import SHARED_DATA


def test_bbc_news_builtin_reproduces_the_shared_split() -> None:
    splits = builtins.bbc_news()
    assert {k: len(v) for k, v in splits.items()} == {"train": 1781, "validation": 221, "test": 223}
    assert Counter(r["label"] for r in splits["test"]) == {0: 51, 1: 39, 2: 42, 3: 51, 4: 40}
    shared = SHARED_DATA / "bbc_news" / "validation.parquet"
    if shared.is_file():
        ref = pd.read_parquet(shared)
        assert sorted(ref.text) == sorted(r["text"] for r in splits["validation"])


def test_minilm_builtin_has_weights() -> None:
    assert (builtins.minilm() / "model.safetensors").is_file()
    with pytest.raises(UserError, match="unknown built-in model 'nope'"):
        locate_model("builtin:nope")


def test_prepare_maps_string_labels_and_caches(tiny_bert: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    import datasets

    cfg = DataConfig(source=str(sentiment_dir), labels=["neg", "pos"])
    prepared = tokenise(cfg, ModelConfig(name="x", max_length=16), str(tiny_bert), tmp_path / "cache", seed=0)
    assert prepared.label_names == ["neg", "pos"]
    assert prepared.sizes == {"train": 96, "eval": 12, "test": 12}
    # Chance level: MCC 0 whatever the balance; the constant prediction's loss is the label entropy (6/6 here).
    assert (prepared.chance_metric, prepared.chance_value) == ("eval_mcc", 0.0)
    assert prepared.chance_loss == pytest.approx(math.log(2))
    dd = datasets.load_from_disk(str(tmp_path / "cache"))
    assert set(dd["eval"].column_names) >= {"input_ids", "attention_mask", "labels"}
    assert dd["eval"]["labels"][:6] == [1] * 6  # the first six rows are the positive reviews
    assert max(len(ids) for ids in dd["train"]["input_ids"]) <= 16


def _write(folder: Path, train: pd.DataFrame, val: pd.DataFrame | None = None) -> Path:
    folder.mkdir()
    train.to_parquet(folder / "train.parquet")
    (val if val is not None else train).to_parquet(folder / "validation.parquet")
    return folder


@pytest.mark.parametrize(
    ("cfg_kwargs", "frame", "message"),
    [
        ({"labels": ["neg", "pos"]}, pd.DataFrame({"text": ["a", "b"], "label": ["neg", "meh"]}), "cannot be mapped"),
        ({}, pd.DataFrame({"sentence": ["a"], "label": [0]}), "no column 'text'"),
        ({"eval_split": "dev"}, pd.DataFrame({"text": ["a"], "label": [0]}), "no split 'dev'"),
        ({"eval_holdout": 1}, pd.DataFrame({"text": ["a", "b"], "label": [0, 1]}), "has an eval split 'validation'"),
        ({}, pd.DataFrame({"text": pd.Series([], dtype=str), "label": pd.Series([], dtype=int)}), "is empty"),
    ],
)
def test_bad_data_is_a_clear_error(tiny_bert: Path, tmp_path: Path, cfg_kwargs: dict, frame: pd.DataFrame,
                                   message: str) -> None:
    src = _write(tmp_path / "d", frame)
    cfg = DataConfig(source=str(src), **cfg_kwargs)
    with pytest.raises(UserError, match=message):
        tokenise(cfg, ModelConfig(name="x"), str(tiny_bert), tmp_path / "cache", seed=0)


def test_missing_data_folder(tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a directory of split files"):
        tokenise(DataConfig(source=str(tmp_path / "nope")), ModelConfig(name="x"), str(tiny_bert), tmp_path / "c", 0)


def test_text_pairs_are_encoded_together(tiny_bert: Path, tmp_path: Path) -> None:
    import datasets

    frame = pd.DataFrame({"a": ["the cat sat", "a dog ran"], "b": ["on the mat", "in the park"], "label": [0, 1]})
    src = _write(tmp_path / "pairs", frame)
    cfg = DataConfig(source=str(src), text_column="a", text_pair_column="b", test_split=None)
    tokenise(cfg, ModelConfig(name="x", max_length=32), str(tiny_bert), tmp_path / "cache", seed=0)
    row = datasets.load_from_disk(str(tmp_path / "cache"))["train"][0]
    assert row["token_type_ids"].count(1) >= 4  # the second segment is marked as such


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "save_to_disk"])
def test_other_local_formats_load(tiny_bert: Path, tmp_path: Path, fmt: str) -> None:
    import datasets

    frame = pd.DataFrame({"text": ["good film", "bad film", "great", "awful"], "label": [1, 0, 1, 0]})
    src = tmp_path / "src"
    src.mkdir()
    for split in ("train", "validation"):
        if fmt == "csv":
            frame.to_csv(src / f"{split}.csv", index=False)
        elif fmt == "jsonl":
            frame.to_json(src / f"{split}.jsonl", orient="records", lines=True)
    if fmt == "save_to_disk":
        ds = datasets.Dataset.from_pandas(frame)
        datasets.DatasetDict({"train": ds, "validation": ds}).save_to_disk(str(src))
    prepared = tokenise(DataConfig(source=str(src), test_split=None), ModelConfig(name="x", max_length=16),
                        str(tiny_bert), tmp_path / "cache", seed=0)
    assert prepared.sizes == {"train": 4, "eval": 4} and prepared.label_names == ["0", "1"]


@pytest.mark.parametrize("test_frame", [
    pd.DataFrame({"text": ["good", "bad", "fine"], "label": [-1, -1, -1]}),  # how GLUE ships its test splits
    pd.DataFrame({"text": ["good", "bad", "fine"]}),  # or with no label column at all
])
def test_an_unlabelled_test_split_is_accepted_and_marked(tiny_bert: Path, tmp_path: Path,
                                                         test_frame: pd.DataFrame) -> None:
    src = _write(tmp_path / "glue", pd.DataFrame({"text": ["good", "bad"] * 4, "label": [1, 0] * 4}))
    test_frame.to_parquet(src / "test.parquet")
    prepared = tokenise(DataConfig(source=str(src), labels=["neg", "pos"]), ModelConfig(name="x"), str(tiny_bert),
                        tmp_path / "cache", seed=0)
    assert prepared.unlabelled == ["test"] and prepared.sizes["test"] == 3


def test_a_partly_labelled_test_split_is_still_an_error(tiny_bert: Path, tmp_path: Path) -> None:
    src = _write(tmp_path / "glue", pd.DataFrame({"text": ["good", "bad"] * 4, "label": [1, 0] * 4}))
    pd.DataFrame({"text": ["good", "bad"], "label": [1, -1]}).to_parquet(src / "test.parquet")
    with pytest.raises(UserError, match="cannot be mapped"):
        tokenise(DataConfig(source=str(src)), ModelConfig(name="x"), str(tiny_bert), tmp_path / "cache", seed=0)
