"""A search whose run folder is a URI: pyarrow's file:// filesystem stands in for s3:// or gs://, so every read
and write goes through the same URI code paths (upload, node-local cache, mirror, checkpoint fetch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from raytune_llm.cli.main import main
from raytune_llm.core import storage
from raytune_llm.results.trials import load_trials
from raytune_llm.runs.layout import open_run, read_info
from tests.conftest import tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_search_status_export_on_a_uri(
    ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bucket = tmp_path / "bucket"
    uri = f"file://{bucket}/runs"
    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp_path / "unused", **{
        "run.storage_path": uri, "search.num_trials": 2, "search.scheduler": {"name": "fifo"},
        "search.space": {"optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}},
    })
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    run_uri = f"{uri}/t"
    assert f"run folder: {run_uri}" in capsys.readouterr().out

    # Everything landed in the "bucket": inputs, Tune's results, the trials' checkpoints; no local run folder.
    remote = bucket / "runs" / "t"
    assert (remote / "prepared" / "data").is_dir() and (remote / "prepared" / "model" / "config.json").is_file()
    assert len(list(remote.glob("experiment_state-*.json"))) == 1
    assert len(list(remote.glob("trial_*/checkpoint_*"))) >= 2  # in-process trials: each in its own folder
    assert not (tmp_path / "unused").exists()

    info = read_info(open_run(run_uri))
    assert info.data_path == f"{run_uri}/prepared/data" and info.run_root == run_uri
    # The trials read the inputs from this node's cache, downloaded once.
    assert info.run_id and (storage.input_cache(info.data_path, info.run_id) / ".complete").is_file()
    trials = load_trials(open_run(run_uri))
    assert [t.outcome for t in trials] == ["done", "done"]

    assert main(["status", run_uri, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"] == {"done": 2} and status["best_trial"]

    out = tmp_path / "best"
    assert main(["export", run_uri, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trial_id"] == status["best_trial"] and metrics["eval_prediction_mismatches"] == 0
    assert (out / "model" / "model.safetensors").is_file()
