"""Fault injection with real processes: a killed driver resumes, a killed DDP worker restarts from its
checkpoint, a trial that raises is marked and the search goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml
from ray.util.placement_group import placement_group_table

from raytune_llm.cli.main import main
from raytune_llm.results.trials import load_trials
from tests.conftest import tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]


def write(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def rows_of(run_dir: Path) -> dict[str, list[dict]]:
    """Each trial's reports so far (a line still being written is skipped)."""
    out = {}
    for result in run_dir.glob("trial_*/result.json"):
        rows = []
        for line in result.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
        if rows:
            out[rows[0]["trial_id"]] = rows
    return out


def kill_tree_of_session(proc: subprocess.Popen, marker: str) -> None:
    """SIGKILL the driver's process group, then any Ray process that was started for it (by its temp dir)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []):
                p.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def test_driver_sigkill_then_resume(tiny_bert: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_experiment(
        tiny_bert, sentiment_dir, tmp_path / "runs",
        **{"train.max_steps": 200, "train.eval_every": 20, "search.num_trials": 4, "search.max_concurrent_trials": 1,
           "search.scheduler": {"name": "fifo"},
           "search.space": {"optimizer.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True}}},
    )
    path = write(tmp_path, cfg)
    # Ray's session files in a folder of their own, to find what the killed driver started; short, since
    # Ray's Unix sockets live below it and socket paths are limited to ~100 characters.
    ray_tmp = Path(tempfile.mkdtemp(prefix="rtl-", dir="/tmp"))
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "raytune_llm", "search", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    run_dir = tmp_path / "runs" / "t"
    deadline = time.time() + 240
    try:
        # Kill once the saved search state records a finished trial and the next trial is part-way (it has
        # reported, so it has a checkpoint).
        while time.time() < deadline:
            rows = rows_of(run_dir) if run_dir.exists() else {}
            partial = [t for t, r in rows.items() if r and r[-1]["step"] < r[-1]["total_steps"]]
            saved = load_trials(run_dir) if list(run_dir.glob("experiment_state-*.json")) else []
            if partial and any(t.status == "TERMINATED" for t in saved):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the search never reached a finished trial plus a running one")
    finally:
        kill_tree_of_session(proc, str(ray_tmp))
    before = rows_of(run_dir)
    finished_before = {t.trial_id: before[t.trial_id] for t in load_trials(run_dir) if t.status == "TERMINATED"}
    in_flight = next(t for t, r in before.items() if r[-1]["step"] < r[-1]["total_steps"])
    checkpointed_step = before[in_flight][-1]["step"]
    # As if the kill had come while the trial was writing a checkpoint (staged in its folder, not yet moved).
    (Path(before[in_flight][-1]["checkpoint_path"]).parent / "rtl-ckpt-killed" / "model").mkdir(parents=True)

    proc2 = subprocess.run([sys.executable, "-m", "raytune_llm", "resume", str(run_dir)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert proc2.returncode == 0, proc2.stdout[-2000:] + proc2.stderr[-2000:]

    trials = load_trials(run_dir)
    assert len(trials) == 4 and len({t.trial_id for t in trials}) == 4  # the budget, no duplicates
    assert all(t.outcome == "done" for t in trials), [t.outcome for t in trials]
    after = rows_of(run_dir)
    for trial_id, rows in finished_before.items():  # finished trials were not re-run
        assert [r["step"] for r in after[trial_id]] == [r["step"] for r in rows]
    first_start = before[in_flight][0]["startup_launch_s"]
    resumed = [r["step"] for r in after[in_flight] if r["startup_launch_s"] != first_start]
    assert resumed and resumed[0] > checkpointed_step  # continued from its checkpoint, not from step 0
    assert resumed[-1] == 200
    steps = [r["step"] for r in after[in_flight]]
    assert len(steps) == len(set(steps))  # no step reported twice
    # These were in-process trials (one worker, executor auto): the checkpoint resumed from was Tune's own.
    assert Path(after[in_flight][-1]["checkpoint_path"]).parent.parent == run_dir
    assert not list(run_dir.rglob("rtl-ckpt-*"))  # the resumed trial cleared what its killed process had staged
    assert main(["export", str(run_dir), "--out", str(tmp_path / "best")]) == 0


def _ddp_workers() -> list[psutil.Process]:
    """Ray Train workers of this test session's Ray (started by ray.init here, so our descendants)."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "RayTrainWorker" in " ".join(p.cmdline()):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def test_worker_sigkill_mid_trial_restarts_from_checkpoint(
    ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path
) -> None:
    cfg = tiny_experiment(
        tiny_bert, sentiment_dir, tmp_path / "runs",
        **{"train.max_steps": 300, "train.eval_every": 20, "resources.num_workers": 2, "search.num_trials": 1,
           "search.scheduler": {"name": "fifo"}},
    )
    run_dir = tmp_path / "runs" / "t"
    killed: list[int] = []

    def kill_a_worker_after_the_first_checkpoint() -> None:
        deadline = time.time() + 180
        while time.time() < deadline and not killed:
            rows = rows_of(run_dir) if run_dir.exists() else {}
            if any(len(r) >= 2 for r in rows.values()) and (workers := _ddp_workers()):
                workers[0].kill()
                killed.append(workers[0].pid)
            time.sleep(0.05)

    groups_before = set(placement_group_table())
    killer = threading.Thread(target=kill_a_worker_after_the_first_checkpoint, daemon=True)
    killer.start()
    assert main(["search", str(write(tmp_path, cfg))]) == 0
    killer.join(timeout=5)
    assert killed, "no DDP worker was found to kill"
    # Both worker groups' resources come back (the first one's and the restarted one's): a group left behind
    # would keep every later trial of this Ray from being placed.
    held = {k: v["state"] for k, v in placement_group_table().items() if k not in groups_before}
    assert all(state == "REMOVED" for state in held.values()), held
    (trial,) = load_trials(run_dir)
    assert trial.outcome == "done"
    steps = [r["step"] for r in trial.rows]
    assert steps == sorted(set(steps)) and steps[-1] == 300  # each step reported once; no step repeated
    assert len({r["startup_launch_s"] for r in trial.rows}) >= 2  # the worker group really was restarted


def test_trial_that_raises_is_marked_and_the_search_goes_on(
    ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_experiment(
        tiny_bert, sentiment_dir, tmp_path / "runs",
        # A product search with the grid searcher: both values are tried, each once.
        **{"search.num_trials": 2, "search.max_concurrent_trials": 1, "search.scheduler": {"name": "fifo"},
           "search.searcher": {"name": "grid"},
           "search.space": {"reinit_top_layers": {"type": "categorical", "choices": [0, 99]}}},
    )
    assert main(["search", str(write(tmp_path, cfg))]) == 0
    run_dir = tmp_path / "runs" / "t"
    trials = load_trials(run_dir)
    failed = [t for t in trials if t.params["reinit_top_layers"] == 99]
    fine = [t for t in trials if t.params["reinit_top_layers"] == 0]
    assert failed and fine
    assert all(t.outcome == "error" and "reinit_top_layers=99" in t.error for t in failed)
    assert all(t.outcome == "done" for t in fine)
    capsys.readouterr()
    assert main(["status", str(run_dir)]) == 0
    assert "reinit_top_layers=99, but the model has 2 layers" in capsys.readouterr().out


def test_trials_that_cannot_be_placed_are_refused_up_front(ray_session: None) -> None:
    from raytune_llm.config.loading import validate_dict
    from raytune_llm.core.errors import UserError
    from raytune_llm.search.driver import connect

    base = {"model": {"name": "m"}, "data": {"source": "d"}}
    with pytest.raises(UserError, match=r"one trial needs 8\.1 CPUs, the cluster has 3"):
        connect(validate_dict({**base, "resources": {"num_workers": 8}}), None)
    with pytest.raises(UserError, match="GPUs"):
        connect(validate_dict({**base, "resources": {"gpus_per_worker": 1}}), None)


def test_a_run_saved_by_an_older_layout_is_refused_in_one_line_and_still_read(
        ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Tune saves the searcher and the callbacks with the search by their module paths; after the package moved
    them, `resume` of an older run says so in one line (exit 2, no traceback) and `status` still reads it."""
    import pickle
    import types

    from tests.synthetic_run import write_run

    run = write_run(tmp_path / "old", trials=3, steps=20, eval_every=10)
    gone = types.ModuleType("raytune_llm.searchers.tell")  # where the searcher's adapter lived before the move

    class TruthfulOptunaSearch:
        pass

    TruthfulOptunaSearch.__module__ = gone.__name__
    TruthfulOptunaSearch.__qualname__ = "TruthfulOptunaSearch"
    gone.TruthfulOptunaSearch = TruthfulOptunaSearch
    sys.modules[gone.__name__] = gone
    try:
        (run / "tuner.pkl").write_bytes(pickle.dumps({"search_alg": TruthfulOptunaSearch()}))
    finally:
        del sys.modules[gone.__name__]
    capsys.readouterr()
    assert main(["resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "started by an older raytune-llm" in err and "raytune_llm.searchers.tell" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["status", str(run)]) == 0
