"""The in-process executor (`resources.executor: auto` with one worker): trials train in their Tune trial's
own process, which Tune reuses; resume after a killed driver and the guard's stops are covered by
test_reliability and test_stability_search, whose single-worker searches run here too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raytune_llm.cli.main import main
from raytune_llm.results.trials import load_trials
from tests.conftest import tiny_experiment
from tests.integration.test_search_e2e import RELOAD, assert_checkpoints_bounded

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]


def write(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_trials_share_a_process_and_its_caches_and_export_reloads(
        ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_experiment(
        tiny_bert, sentiment_dir, tmp_path / "runs",
        **{"train.max_steps": 8, "train.eval_every": 2, "search.num_trials": 4, "search.max_concurrent_trials": 1,
           "search.space": {"optimizer.lr": {"type": "categorical", "choices": [3.0e-3, 1.0e-7]}},
           "search.points_to_evaluate": [{"optimizer.lr": 3.0e-3}, {"optimizer.lr": 1.0e-7}],
           "search.scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2}},
    )
    assert main(["search", str(write(tmp_path, cfg))]) == 0
    run_dir = tmp_path / "runs" / "t"
    trials = load_trials(run_dir)
    assert len(trials) == 4
    firsts = sorted((t.rows[0] for t in trials), key=lambda r: r["first_step_at"])
    # One process ran them all (reused by Tune), and only the first paid for loading.
    assert len({r["worker_pid"] for r in firsts}) == 1, [r["worker_pid"] for r in firsts]
    assert firsts[0]["startup_cached"] == ""
    for later in firsts[1:]:
        assert set(later["startup_cached"].split(",")) == {"data", "tokenizer", "weights"}, later["startup_cached"]
    assert any(t.outcome == "early-stopped" for t in trials), [t.outcome for t in trials]

    # Checkpoints are the trial's own (Tune's), bounded like Train's, and none under train/.
    assert not (run_dir / "train").exists() or not list((run_dir / "train").glob("*/checkpoint_*"))
    assert all(Path(t.rows[-1]["checkpoint_path"]).parent.parent == run_dir for t in trials)
    best_id = assert_checkpoints_bounded(trials, lambda t: Path(t.rows[-1]["checkpoint_path"]).parent)
    # Staged beside the trial and moved in place (no copy by Tune): nothing staged is left, every kept one whole.
    assert not list(run_dir.rglob("rtl-ckpt-*"))
    for ckpt in run_dir.glob("*/checkpoint_*"):
        assert {p.name for p in ckpt.iterdir()} >= {"model", "trainer_state.pt", "eval_predictions.json",
                                                   "metrics.json"}, ckpt

    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trial_id"] == best_id and metrics["eval_prediction_mismatches"] == 0
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(out), str(sentiment_dir)], capture_output=True,
                          text=True, timeout=120, check=True)
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])
    trial_preds = json.loads((out / "trial_eval_predictions.json").read_text())
    assert reloaded["preds"] == trial_preds


def test_a_trial_that_raises_leaves_a_fresh_process_for_the_next(
        ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_experiment(
        tiny_bert, sentiment_dir, tmp_path / "runs",
        **{"search.num_trials": 3, "search.max_concurrent_trials": 1, "search.scheduler": {"name": "fifo"},
           "run.worker_retries": 0,
           "search.space": {"reinit_top_layers": {"type": "categorical", "choices": [0, 99]}},
           "search.points_to_evaluate": [{"reinit_top_layers": 0}, {"reinit_top_layers": 99},
                                         {"reinit_top_layers": 0}]},
    )
    assert main(["search", str(write(tmp_path, cfg))]) == 0
    trials = load_trials(tmp_path / "runs" / "t")
    assert sorted(t.outcome for t in trials) == ["done", "done", "error"], [t.outcome for t in trials]
    # One at a time, in the order of the points: healthy, raising, healthy.
    first, after = sorted((t.rows[0] for t in trials if t.rows), key=lambda r: r["first_step_at"])
    # The raising trial's process was not reused: the next trial started a fresh one, with nothing cached.
    assert after["worker_pid"] != first["worker_pid"]
    assert after["startup_cached"] == ""


def test_pbt_search_copies_the_leaders_checkpoints_and_exports(
        ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_experiment(
        tiny_bert, sentiment_dir, tmp_path / "runs",
        **{"train.max_steps": 12, "train.eval_every": 2, "search.num_trials": 4,
           "search.space": {"optimizer.lr": {"type": "float", "low": 1.0e-6, "high": 3.0e-2, "log": True}},
           # one trial far below the others: it is in the bottom quarter at every perturbation
           "search.points_to_evaluate": [{"optimizer.lr": 1.0e-6}, {"optimizer.lr": 3.0e-3}],
           # synch: every trial waits at each perturbation, so which trials copy which does not depend on timing
           "search.scheduler": {"name": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.25,
                                "synch": True}},
    )
    assert main(["search", str(write(tmp_path, cfg))]) == 0
    run_dir = tmp_path / "runs" / "t"
    trials = load_trials(run_dir)
    assert len(trials) == 4 and all(t.outcome == "done" for t in trials), [t.outcome for t in trials]
    # Some trial took over another's checkpoint: its learning rate changed mid-run, and it went on from the
    # checkpoint's step (never from scratch) to the end of its budget with the new value.
    changed = [t for t in trials if len({r["config"]["optimizer.lr"] for r in t.rows}) > 1]
    assert changed, [[(r["step"], r["config"]["optimizer.lr"]) for r in t.rows] for t in trials]
    for t in changed:
        first_new = next(r for r in t.rows if r["config"]["optimizer.lr"] != t.rows[0]["config"]["optimizer.lr"])
        assert first_new["step"] > 2 and t.rows[-1]["step"] == 12
        assert t.rows[-1]["config"]["optimizer.lr"] == first_new["config"]["optimizer.lr"]
    # No trial ends with hyperparameters its last report did not run with (Tune's PBT exploits at a last report).
    state = {t.trial_id: t.params for t in trials}
    for t in trials:
        assert state[t.trial_id]["optimizer.lr"] == t.rows[-1]["config"]["optimizer.lr"], t.trial_id
    assert list(run_dir.glob("pbt_policy_*.txt"))  # Tune's record of each trial's schedule
    assert main(["export", str(run_dir), "--out", str(tmp_path / "best")]) == 0
    assert json.loads((tmp_path / "best" / "metrics.json").read_text())["eval_prediction_mismatches"] == 0
