"""The stability guard inside a real search: a diverging trial is stopped within steps, marked, and taught
to Optuna as a bad (finite) point; the search completes and exports a finite best; `train` re-runs it."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import yaml

from raytune_llm.cli.main import main
from raytune_llm.results.trials import load_trials
from tests.conftest import tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]


def test_diverging_trial_is_stopped_and_taught_to_optuna(
    ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_experiment(
        tiny_bert, sentiment_dir, tmp_path / "runs",
        **{
            "train.max_steps": 40, "train.eval_every": 20, "train.grad_clip": None,
            "search.num_trials": 3, "search.max_concurrent_trials": 1, "search.scheduler": {"name": "fifo"},
            "search.space": {"optimizer.lr": {"type": "categorical", "choices": [1.0e30, 3.0e-3]}},
        },
    )
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    run_dir = tmp_path / "runs" / "t"

    trials = load_trials(run_dir)
    diverged = [t for t in trials if t.params["optimizer.lr"] == 1.0e30]
    healthy = [t for t in trials if t.params["optimizer.lr"] == 3.0e-3]
    assert diverged and healthy, [t.params for t in trials]
    for t in diverged:
        assert t.outcome == "unstable:non_finite"
        assert t.last["step"] <= 4  # a few steps of a 40-step budget (< 10% of a full trial)
        assert t.last["eval_loss"] == 1e9  # the worst finite value, not NaN
    assert all(t.outcome == "done" for t in healthy)

    # Optuna saw every trial complete with a finite value; the diverged ones as the worst.
    state = pickle.loads(next(run_dir.glob("searcher-state-*.pkl")).read_bytes())
    values = {t.params["optimizer.lr"]: t.value for t in state["_ot_study"].trials}
    assert all(v is not None and math.isfinite(v) for v in values.values())
    assert values[1.0e30] == 1e9 and values[3.0e-3] < 1.0

    # status shows the reason and the counts; export never picks the stopped trial.
    capsys.readouterr()
    assert main(["status", str(run_dir)]) == 0
    table = capsys.readouterr().out
    assert "unstable:non_finite" in table and f"{len(diverged)} unstable:non_finite" in table
    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["params"]["optimizer.lr"] == 3.0e-3 and math.isfinite(metrics["trial"]["eval_loss"])
    assert metrics["outcomes"]["unstable:non_finite"] == len(diverged)

    # Robustness: the top config re-run with 2 seeds, summarised, and exportable as the robust pick.
    assert main(["robust", str(run_dir), "--top-k", "1", "--seeds", "2"]) == 0
    summary = json.loads((run_dir / "robust" / "robust.json").read_text())
    (top,) = summary["configs"]
    assert top["params"]["optimizer.lr"] == 3.0e-3 and sorted(top["seeds"]) == [43, 44]
    assert len(top["values"]) == 2 and 0.0 <= top["failed_rate"] <= 1.0
    assert top["robust_score"] == pytest.approx(top["mean"] + top["std"])  # eval_loss: lower is better
    robust_out = tmp_path / "robust-best"
    assert main(["export", str(run_dir), "--by", "robust", "--out", str(robust_out)]) == 0
    chosen = json.loads((robust_out / "metrics.json").read_text())
    assert chosen["chosen_by"] == "robust" and chosen["params"]["seed"] in (43, 44)
    assert yaml.safe_load((robust_out / "best_config.yaml").read_text())["train"]["seed"] == chosen["params"]["seed"]

    # The exported best_config.yaml re-runs as one training job.
    retrained = tmp_path / "retrained"
    assert main(["train", str(out / "best_config.yaml"), "--set", f"run.storage_path={tmp_path / 'runs2'}",
                 "--out", str(retrained)]) == 0
    assert (retrained / "model" / "model.safetensors").is_file()


def never_learning_search(model: Path, data: Path, tmp_path: Path, population: bool) -> Path:
    """Two FIFO trials at lr 0 (a loss_margin of 0.5 reads the noisy train loss of a model that does not move as
    flat); returns the experiment file."""
    cfg = tiny_experiment(
        model, data, tmp_path / "runs",
        **{
            "train.max_steps": 12, "train.eval_every": 2, "search.num_trials": 2, "search.max_concurrent_trials": 1,
            "search.scheduler": {"name": "fifo"},
            "search.space": {"optimizer.weight_decay": {"type": "categorical", "choices": [0.0, 0.01]}},
            "train.optimizer": {"lr": 0.0},
            "stability.chance_level": {"loss_margin": 0.5, "population": population},
        },
    )
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_search_whose_every_trial_the_guard_stopped_still_exports(
    ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # lr 0 never learns: every trial is stopped as chance_level (without `population: false` the guard would
    # wait, since no trial of the search ever leaves chance: see the next test).
    path = never_learning_search(tiny_bert, sentiment_dir, tmp_path, population=False)
    capsys.readouterr()
    assert main(["search", str(path)]) == 0
    searched = capsys.readouterr().out
    assert "no healthy trial" in searched and "at_fraction" in searched
    run_dir = tmp_path / "runs" / "t"
    trials = load_trials(run_dir)
    assert [t.outcome for t in trials] == ["unstable:chance_level"] * 2

    assert main(["status", str(run_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["best_is_fallback"] and status["best_trial"] in {t.trial_id for t in trials}
    assert main(["status", str(run_dir)]) == 0
    table = capsys.readouterr().out
    assert "no healthy trial" in table and "chance_level" in table and "at_fraction" in table  # why, and the fix

    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    assert "warning: no healthy trial" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fallback"]["stop_reason"] == "chance_level" and metrics["eval_prediction_mismatches"] == 0
    assert (out / "model" / "model.safetensors").is_file()


def test_no_trial_is_stopped_at_chance_while_none_of_the_search_has_left_it(
    ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The same never-learning trials with the default population rule: with no trial of the search above chance,
    # "at chance" means a slow task, not broken trials, and every trial runs to the end (through the real board).
    # Having learnt nothing by then, each ended at chance: a failure however it ended (#24.11), exported only as the
    # fallback, and said so.
    path = never_learning_search(tiny_bert, sentiment_dir, tmp_path, population=True)
    assert main(["search", str(path)]) == 0
    run_dir = tmp_path / "runs" / "t"
    trials = load_trials(run_dir)
    assert [t.outcome for t in trials] == ["at-chance:done", "at-chance:done"]
    for t in trials:  # judged from the chance rule's at_fraction (25% of 12 steps) on
        assert [r.get("at_chance") for r in t.rows] == [None] + [True] * (len(t.rows) - 1)
    capsys.readouterr()
    assert main(["status", str(run_dir)]) == 0
    table = capsys.readouterr().out
    assert "failed: 2 of 2 trials, 100% of the optimizer steps; 2 ended at chance level" in table
    assert "ended at chance level; `export` falls back to it" in table
    assert main(["export", str(run_dir), "--out", str(tmp_path / "best")]) == 0
    assert "which ended at chance level" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert metrics["fallback"]["failure"] == "ended_at_chance"


def test_a_plateau_stopped_trial_is_a_healthy_early_stop_that_exports(
    ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path
) -> None:
    # min_delta 1.0 on eval_loss: no evaluation ever counts as an improvement, so plateau stops the trial at its
    # second evaluation, while it is perfectly healthy.
    cfg = tiny_experiment(
        tiny_bert, sentiment_dir, tmp_path / "runs",
        **{"train.max_steps": 12, "train.eval_every": 2, "search.num_trials": 1, "search.scheduler": {"name": "fifo"},
           "stability.plateau": {"enabled": True, "patience": 2, "min_delta": 1.0}},
    )
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    run_dir = tmp_path / "runs" / "t"
    (trial,) = load_trials(run_dir)
    assert trial.outcome == "early-stopped" and trial.stop_reason == "plateau" and trial.last["step"] < 12
    assert math.isfinite(trial.last["eval_loss"]) and trial.last["eval_loss"] < 1e6  # its real score, not the worst
    assert list(Path(trial.last["checkpoint_path"]).parent.glob("checkpoint_*"))  # kept
    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trial_id"] == trial.trial_id and metrics["fallback"] is None
    assert metrics["outcomes"] == {"early-stopped": 1}


def test_train_on_a_config_that_diverges_says_so_in_one_line(
    ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp_path / "runs",
                          **{"train.max_steps": 8, "train.eval_every": 4, "train.grad_clip": None,
                             "train.optimizer": {"lr": 1.0e30}})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 2  # stopped as non_finite before any evaluation: nothing to keep
    err = capsys.readouterr().err
    assert "Traceback" not in err and "non_finite" in err and len(err.strip().splitlines()) == 1
