"""A search with its run folder in S3: a real S3 API (moto's server) on localhost, reached through pyarrow's
S3 filesystem by the driver, the Ray Train workers and the Ray-free commands, exactly as with AWS."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def s3_env() -> Iterator[dict[str, str]]:
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket="bucket")
    yield env
    server.stop()


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "raytune_llm", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_search_status_export_in_s3(s3_env: dict[str, str], tiny_bert: Path, sentiment_dir: Path,
                                    tmp_path: Path) -> None:
    import boto3

    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp_path / "unused", **{
        # 1-worker trials, both at once: two trials on one node fetch the inputs from S3 under the node cache's lock.
        # (2-worker trials in a second Ray beside the suite's own on 2 cores hit Train V2's slow resource release.)
        "run.storage_path": "s3://bucket/runs", "search.num_trials": 2, "resources.num_workers": 1,
        "search.scheduler": {"name": "fifo"},  # concurrent trials under ASHA may cut one short
        "search.space": {"optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}},
    })
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = cli(["search", str(path)], s3_env).stdout
    status = cli(["status", "s3://bucket/runs/t"], s3_env).stdout  # shows any trial's error
    assert "run folder: s3://bucket/runs/t" in out and "trials: 2 done" in out, out[-2000:] + status

    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bucket", Prefix="runs/t/")["Contents"]]
    assert any(k.startswith("runs/t/experiment_state-") for k in keys)
    assert any(k.startswith("runs/t/prepared/data/") for k in keys)
    assert sum(k.endswith("/model/model.safetensors") and k.startswith("runs/t/trial_") for k in keys) >= 2
    assert not (tmp_path / "unused").exists()  # nothing of the run on the local disk
    # Tracking files are written on the driver's disk and uploaded into the run folder when the search ends.
    assert "runs/t/optuna.journal" in keys
    assert any(k.startswith("runs/t/tensorboard/") for k in keys)
    cli(["report", "s3://bucket/runs/t", "--out", str(tmp_path / "report")], s3_env)
    assert (tmp_path / "report" / "index.html").is_file()

    status = json.loads(cli(["status", "s3://bucket/runs/t", "--json"], s3_env).stdout)
    assert status["counts"] == {"done": 2}
    cli(["export", "s3://bucket/runs/t", "--out", str(tmp_path / "best")], s3_env)
    metrics = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert metrics["trial_id"] == status["best_trial"] and metrics["eval_prediction_mismatches"] == 0
