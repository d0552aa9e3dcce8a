"""Run folders on URIs, exercised through pyarrow's file:// filesystem (the same code paths as s3:// or gs://)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raytune_llm.core import storage
from raytune_llm.core.errors import UserError
from raytune_llm.runs.layout import open_run, run_root_for
from raytune_llm.schema import ExperimentConfig


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(storage, "CACHE_ROOT", tmp_path / "cache")
    return tmp_path / "cache"


def _remote_run(tmp_path: Path) -> str:
    root = tmp_path / "bucket" / "runs" / "r1"
    for rel in ("raytune_llm.json", "trial_1/result.json", "prepared/data/x.arrow",
                "train/trial_1/checkpoint_000/model/w.safetensors", "train/trial_1/checkpoint_manager_snapshot.json",
                "robust/robust.json", "robust/train/t/checkpoint_000/a"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    return f"file://{root}"


def test_uri_detection_and_run_root() -> None:
    assert storage.is_uri("s3://b/runs") and storage.is_uri("gs://b") and not storage.is_uri("/data/runs")
    cfg = ExperimentConfig.model_validate({"model": {"name": "m"}, "data": {"source": "d"},
                                           "run": {"name": "r1", "storage_path": "s3://bucket/runs/"}})
    assert run_root_for(cfg) == "s3://bucket/runs/r1"


def test_mirror_has_results_but_no_checkpoints_or_inputs(tmp_path: Path) -> None:
    uri = _remote_run(tmp_path)
    local = open_run(uri)
    assert (local / "trial_1" / "result.json").read_text() == "trial_1/result.json"
    assert (local / "robust" / "robust.json").is_file()
    assert not (local / "train").exists() and not (local / "prepared").exists()
    assert not (local / "robust" / "train").exists()


def test_mirror_of_a_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such run folder"):
        storage.mirror(f"file://{tmp_path}/nothing/here")


def test_node_copy_downloads_once_per_run_and_leaves_local_paths_alone(tmp_path: Path) -> None:
    uri = _remote_run(tmp_path) + "/prepared/data"
    first = Path(storage.node_copy(uri, "run-a"))
    assert (first / "x.arrow").read_text() == "prepared/data/x.arrow"
    (tmp_path / "bucket/runs/r1/prepared/data/x.arrow").write_text("changed")
    # The same run: read from the node's copy, not the bucket.
    assert Path(storage.node_copy(uri, "run-a")) == first and (first / "x.arrow").read_text() == "prepared/data/x.arrow"
    # The run folder removed and made again under the same URI is another run: it never gets the old inputs.
    again = Path(storage.node_copy(uri, "run-b"))
    assert (again / "x.arrow").read_text() == "changed"
    assert storage.node_copy("/local/path", "run-a") == "/local/path"
    assert storage.node_copy("org/hub-model", "run-a") == "org/hub-model"


def test_fetch_checkpoint_maps_trains_schemeless_path(tmp_path: Path) -> None:
    uri = _remote_run(tmp_path)
    # Train reports checkpoint paths without the scheme (for s3: "bucket/runs/r1/train/...").
    reported = "bucket/runs/r1/train/trial_1/checkpoint_000"
    local = storage.fetch_checkpoint(uri, reported)
    assert (local / "model" / "w.safetensors").is_file()
    with pytest.raises(UserError, match="not inside run"):
        storage.fetch_checkpoint(uri, "elsewhere/train/trial_1/checkpoint_000")


def test_remove_checkpoints_keeps_trains_snapshot(tmp_path: Path) -> None:
    uri = _remote_run(tmp_path)
    storage.remove_checkpoints(uri + "/train", "trial_1")
    trial = tmp_path / "bucket/runs/r1/train/trial_1"
    assert [p.name for p in trial.iterdir()] == ["checkpoint_manager_snapshot.json"]
    storage.remove_checkpoints(str(tmp_path / "bucket/runs/r1/robust/train"), "t")  # local paths too
    assert not (tmp_path / "bucket/runs/r1/robust/train/t/checkpoint_000").exists()


def test_upload_and_put_file_roundtrip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "b.json").write_text(json.dumps({"x": 1}))
    dest = f"file://{tmp_path}/bucket/up"
    storage.upload(src, dest)
    storage.put_file(src / "a" / "b.json", dest + "/c.json")
    assert json.loads((tmp_path / "bucket/up/a/b.json").read_text()) == {"x": 1}
    assert storage.exists(dest + "/c.json") and not storage.exists(dest + "/d.json")
