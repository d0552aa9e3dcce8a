"""Bad input that is only visible once files are read: one clear error naming the problem and the fix,
exit code 2, no traceback, nothing half-written. (Pure config mistakes: test_validation.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raytune_llm.core.errors import UserError
from raytune_llm.models.build import preflight
from raytune_llm.schema import TrainConfig
from raytune_llm.sources.locate import locate_model
from tests.conftest import tiny_experiment


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "raytune_llm", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd)


def write_experiment(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def assert_clean_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_model_folder_without_a_model(tiny_bert: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    not_a_model = tmp_path / "empty-model"
    not_a_model.mkdir()
    cfg = tiny_experiment(not_a_model, sentiment_dir, tmp_path / "runs")
    proc = cli("search", str(write_experiment(tmp_path, cfg)))
    assert_clean_error(proc, "model.name", "not a model folder", "save_pretrained")
    assert not (tmp_path / "runs" / "t").exists()  # nothing half-written


def test_missing_data_folder(tiny_bert: Path, tmp_path: Path) -> None:
    cfg = tiny_experiment(tiny_bert, tmp_path / "no-such-data", tmp_path / "runs")
    proc = cli("search", str(write_experiment(tmp_path, cfg)))
    assert_clean_error(proc, "data.source", "not a directory of split files")
    assert not (tmp_path / "runs" / "t").exists()


def test_missing_text_column(tiny_bert: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp_path / "runs", **{"data.text_column": "review"})
    proc = cli("search", str(write_experiment(tmp_path, cfg)))
    assert_clean_error(proc, "no column 'review'", "data.text_column")


def test_storage_path_not_writable(tiny_bert: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg = tiny_experiment(tiny_bert, sentiment_dir, blocker / "runs")
    proc = cli("search", str(write_experiment(tmp_path, cfg)))
    assert_clean_error(proc, "run.storage_path", "writable")


def test_existing_run_name_is_refused(tiny_bert: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    existing = tmp_path / "runs" / "t"
    existing.mkdir(parents=True)
    (existing / "raytune_llm.json").write_text("{}")
    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp_path / "runs")
    proc = cli("search", str(write_experiment(tmp_path, cfg)))
    assert_clean_error(proc, "already exists", "run.name")
    assert (existing / "raytune_llm.json").read_text() == "{}"  # untouched


def test_peft_method_that_does_not_fit_is_refused_up_front(tiny_bert: Path) -> None:
    train = TrainConfig.model_validate({"peft": {"method": "lora", "lora": {"targets": ["no_such_module"]}}})
    with pytest.raises(UserError, match="lora does not fit 'bert' models"):
        preflight(str(tiny_bert), ["neg", "pos"], [train], str(tiny_bert))
    ok = [TrainConfig.model_validate({"peft": {"method": m}}) for m in ("lora", "prompt_tuning", "prefix_tuning")]
    preflight(str(tiny_bert), ["neg", "pos"], ok, str(tiny_bert))


def test_locate_model(tiny_bert: Path, tmp_path: Path) -> None:
    assert locate_model(str(tiny_bert)) == str(tiny_bert.resolve())
    assert locate_model("org/some-hub-model") == "org/some-hub-model"  # hub ids pass through
    with pytest.raises(UserError, match="not a model folder"):
        locate_model(str(tmp_path))


def test_a_checkpoint_with_another_head_size_gets_a_new_head(tiny_bert: Path) -> None:
    from raytune_llm.models.build import build_model

    model = build_model(str(tiny_bert), ["a", "b", "c", "d", "e"], TrainConfig(), str(tiny_bert))  # saved: 2
    assert model.classifier.out_features == 5 and model.config.id2label[4] == "e"


def test_a_failed_search_never_deletes_a_folder_it_did_not_create(tmp_path: Path) -> None:
    from raytune_llm.config.loading import validate_dict
    from raytune_llm.runs.prepare import prepare_run

    theirs = tmp_path / "runs" / "mine"
    theirs.mkdir(parents=True)
    (theirs / "notes.txt").write_text("the user's own file")
    cfg = validate_dict({"model": {"name": "builtin:minilm"}, "data": {"source": str(tmp_path / "no-such-data")},
                         "run": {"name": "mine", "storage_path": str(tmp_path / "runs")}})
    with pytest.raises(UserError):
        prepare_run(cfg)  # fails on the data, after the run folder was set up
    assert (theirs / "notes.txt").read_text() == "the user's own file"
    assert not (theirs / "prepared").exists()


# ---------------------------------------------------------------- bad data: one line, exit 2, before Ray starts


def _copy_with(src: Path, dst: Path, change: object = None, raw: bytes | None = None) -> Path:
    """The data folder `src` at `dst`, its train split changed by `change(DataFrame)` or replaced by `raw` bytes."""
    import shutil

    import pandas as pd

    shutil.copytree(src, dst)
    train = dst / "train.parquet"
    if raw is not None:
        train.write_bytes(raw)
    elif change is not None:
        df = pd.read_parquet(train)
        change(df)
        df.to_parquet(train)
    return dst


def _set(column: str, rows: slice, value: object) -> object:
    def change(df: object) -> None:
        df[column] = df[column].astype(object)
        for i in range(*rows.indices(len(df))):
            df.at[i, column] = value

    return change


BAD_DATA = {  # name: (task, fixture of the data it starts from, how the train split is broken, the error's words)
    "corrupt file": ("sequence_classification", "sentiment_dir", {"raw": b"not parquet " * 20},
                     ["split 'train'", "train.parquet", "corrupt, truncated"]),
    "truncated file": ("sequence_classification", "sentiment_dir", {"truncate": True},
                       ["split 'train'", "train.parquet"]),
    "nulls in the text": ("sequence_classification", "sentiment_dir", {"change": _set("text", slice(0, 3), None)},
                          ["split 'train' column 'text'", "3 of 96 rows empty or missing"]),
    "empty texts": ("sequence_classification", "sentiment_dir", {"change": _set("text", slice(5, 7), "  ")},
                    ["split 'train' column 'text'", "2 of 96 rows", "row 5"]),
    "one class": ("sequence_classification", "sentiment_dir", {"change": _set("label", slice(None), "pos")},
                  ["split 'train' column 'label'", "one class ('pos')", "96 rows"]),
    "labels outside data.labels": ("sequence_classification", "sentiment_dir",
                                   {"change": _set("label", slice(0, 2), "maybe")},
                                   ["2 labels in split 'train' (column 'label')", "'maybe'"]),
    "regression target NaN": ("regression", "pairs_dir", {"change": _set("label", slice(0, 1), float("nan"))},
                              ["split 'train' column 'label'", "finite numbers", "1 others"]),
    "tags not one per word": ("token_classification", "ner_dir", {"change": _set("ner_tags", slice(0, 4), [0, 0])},
                              ["split 'train'", "4 of 64 rows", "'ner_tags'", "'tokens'"]),
    "no instruction column": ("causal_lm", "instruct_dir", {"change": lambda df: df.rename(
        columns={"instruction": "question"}, inplace=True)}, ["split 'train' (40 rows)", "'instruction'"]),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_one_line_naming_split_column_and_rows(case: str, request: pytest.FixtureRequest,
                                                            tmp_path: Path) -> None:
    task, fixture, how, words = BAD_DATA[case]
    src = request.getfixturevalue(fixture)
    raw = how.get("raw")
    if how.get("truncate"):
        whole = (src / "train.parquet").read_bytes()
        raw = whole[: len(whole) // 2]
    data = _copy_with(src, tmp_path / "data", how.get("change"), raw)
    model = request.getfixturevalue("tiny_llama" if task == "causal_lm" else "tiny_bert")
    overrides: dict = {"task": task}
    if task == "token_classification":
        overrides.update({"data.text_column": "tokens", "data.label_column": "ner_tags", "data.labels": None})
    elif task == "regression":
        overrides.update({"data.text_pair_column": "text_pair", "data.labels": None})
    elif task == "causal_lm":
        overrides.update({"data.prompt_template": "Question: {instruction}\\nAnswer: ", "data.label_column": "output",
                          "data.eval_holdout": 8, "data.labels": None, "generation.eval_samples": 0})
    cfg = tiny_experiment(model, data, tmp_path / "runs", **overrides)
    proc = cli("search", str(write_experiment(tmp_path, cfg)))
    assert_clean_error(proc, *words)
    assert "Started a local Ray" not in proc.stderr + proc.stdout  # refused before any trial, or Ray, started
    assert "Failed to read file" not in proc.stderr  # datasets' own line, said again by ours
    assert not (tmp_path / "runs" / "t").exists()  # nothing half-written
