"""A live search with the portfolio start (the default): the default recipe is trial 1 and runs to the end though
ASHA stops every other trial at its first evaluation, the learnt recipes follow, and status, the report and export
show the pick against the default recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from raytune_llm.cli.main import main
from raytune_llm.recipes import library
from raytune_llm.results.trials import load_trials
from tests.conftest import tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]


def test_the_default_recipe_runs_first_and_to_the_end_and_the_pick_is_reported_against_it(
        ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tiny_experiment(
        tiny_bert, sentiment_dir, tmp_path / "runs",
        **{"train.max_steps": 6, "train.eval_every": 2, "search.num_trials": 4, "search.max_concurrent_trials": 1,
           "search.start": None, "search.portfolio_size": 2,
           "search.space": {"peft.method": {"type": "categorical", "choices": ["full", "lora"]},
                            "optimizer.lr": {"type": "float", "low": 1e-7, "high": 1e-4, "log": True,
                                             "by": {"peft.method": {"lora": {"low": 1e-3, "high": 1e-2}}}}},
           # ASHA told to stop every trial after its first evaluation: only the default recipe's goes on
           "search.scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 4, "max_t": 1}},
    )
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    run_dir = tmp_path / "runs" / "t"
    trials = sorted(load_trials(run_dir), key=lambda t: t.rows[0]["first_step_at"])
    first, second = trials[:2]
    assert first.recipe == "default" and second.recipe == "lora-lr5.6e-3-w0.1-clipnone"
    assert first.params == {"peft.method": "full", "optimizer.lr": library().default("full").params["optimizer.lr"]}
    assert second.params["optimizer.lr"] == pytest.approx(5.64e-3)
    assert all(t.recipe is None for t in trials[2:])  # then the searcher
    # the yardstick ran its whole budget (every evaluation), while ASHA stopped every other trial at its first
    assert first.outcome == "done" and first.last["step"] == 6 and len(first.rows) == 3
    assert all(len(t.rows) == 1 for t in trials[1:]), [len(t.rows) for t in trials]

    capsys.readouterr()
    assert main(["status", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert "[default]" in text and ("vs the default recipe" in text or "no trial beat it" in text), text
    assert main(["status", str(run_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    gain = status["over_default_recipe"]
    assert gain["default_trial"] == first.trial_id
    assert gain["pick"] <= gain["default"]  # eval_loss: never worse than the default recipe
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report")]) == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["over_default_recipe"]["default_trial"] == first.trial_id
    capsys.readouterr()
    assert main(["export", str(run_dir), "--out", str(tmp_path / "best")]) == 0
    assert "the default recipe" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert metrics["over_default_recipe"] == summary["over_default_recipe"]
