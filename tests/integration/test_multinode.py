"""Two Ray nodes on one machine, started by hand as cluster/README.md says (`ray start --head` + `ray start
--address`): a trial's 2 DDP workers land on different nodes with SPREAD, and losing the second node mid-search
costs no trial."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from raytune_llm.results.trials import load_trials
from tests.conftest import tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]
RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill(marker: str) -> int:
    """SIGKILL every process whose command line holds `marker`, and their descendants (a raylet's agents
    rename themselves and would outlive it)."""
    victims: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []):
                victims[p.pid] = p
                victims.update({c.pid: c for c in p.children(recursive=True)})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    for p in victims.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    return len(victims)


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[tuple[str, dict[str, str]]]:
    # A temp dir of their own (short: Ray's sockets live below it) marks every process of this cluster.
    tmp = tempfile.mkdtemp(prefix="rtl-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": tmp, "RAY_AUTH_MODE": "disabled"}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=3",
                        "--dashboard-host=127.0.0.1"], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                        '--resources={"second_node": 1}'], env=env, check=True, capture_output=True, timeout=120)
        yield address, env
    finally:
        _kill(tmp)


def search(address: str, env: dict[str, str], cfg: dict, tmp_path: Path) -> subprocess.Popen:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.Popen([sys.executable, "-m", "raytune_llm", "search", str(path), "--address", address],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_spread_places_a_trials_workers_on_different_nodes(
    two_nodes: tuple[str, dict[str, str]], tiny_bert: Path, sentiment_dir: Path, tmp_path: Path
) -> None:
    address, env = two_nodes
    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp_path / "runs",
                          **{"resources.num_workers": 2, "resources.placement_strategy": "SPREAD",
                             "search.num_trials": 2, "search.max_concurrent_trials": 1})
    proc = search(address, env, cfg, tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    trials = load_trials(tmp_path / "runs" / "t")
    assert len(trials) == 2 and all(t.outcome == "done" for t in trials)
    for t in trials:
        ranks = t.rows[0]["worker_nodes"].split(",")
        assert len(ranks) == 2 and ranks[0] != ranks[1], ranks


def test_losing_a_node_mid_search_loses_no_trial(
    two_nodes: tuple[str, dict[str, str]], tiny_bert: Path, sentiment_dir: Path, tmp_path: Path
) -> None:
    address, env = two_nodes
    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp_path / "runs",
                          **{"resources.num_workers": 2, "resources.placement_strategy": "SPREAD",
                             "train.max_steps": 200, "train.eval_every": 20,
                             "search.num_trials": 3, "search.max_concurrent_trials": 1,
                             "search.scheduler": {"name": "fifo"}})
    proc = search(address, env, cfg, tmp_path)
    run_dir = tmp_path / "runs" / "t"
    deadline = time.time() + 240
    killed = 0
    while time.time() < deadline and proc.poll() is None:
        rows = {}
        for f in run_dir.glob("trial_*/result.json"):
            rows[f] = [ln for ln in f.read_text().splitlines() if ln.strip()]
        if sum(1 for r in rows.values() if r) >= 2:  # the second trial is running and has a checkpoint
            killed = _kill("second_node")
            break
        time.sleep(0.1)
    assert killed, "the second node's processes were not found"
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out[-3000:]
    trials = load_trials(run_dir)
    assert len(trials) == 3, [t.trial_id for t in trials]  # every trial accounted for
    assert all(t.outcome == "done" for t in trials), [(t.outcome, t.error) for t in trials]
