"""A search whose space holds `augment.*` and `consistency.*` (train.augment, train.consistency): every trial
trains with the settings it was given (its params in its record), and the pick exports and is ready to be trained
again (its best_config.yaml holds them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from raytune_llm.cli.main import main
from raytune_llm.results.trials import load_trials
from tests.conftest import tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

SPACE = {
    "augment.method": {"type": "categorical", "choices": ["none", "eda", "cutoff"]},
    "augment.alpha": {"type": "float", "low": 0.05, "high": 0.3, "when": {"augment.method": ["eda", "cutoff"]}},
    "consistency.alpha": {"type": "float", "low": 0.0, "high": 2.0},
}
POINTS = [{"augment.method": "eda", "augment.alpha": 0.2, "consistency.alpha": 1.0},
          {"augment.method": "cutoff", "augment.alpha": 0.1, "consistency.alpha": 0.0},
          {"augment.method": "none", "consistency.alpha": 0.5}]


def test_a_search_over_augmentation_and_consistency_runs_and_exports(
        ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp_path / "runs", **{
        "train.optimizer.lr": 3e-3, "search.num_trials": 3, "search.max_concurrent_trials": 1,
        "search.scheduler": {"name": "fifo"}, "search.space": SPACE, "search.points_to_evaluate": POINTS,
        "search.metric": "eval_accuracy", "search.mode": "max"})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    run_dir = tmp_path / "runs" / "t"
    trials = sorted(load_trials(run_dir), key=lambda t: t.rows[0]["first_step_at"])
    assert [{k: v for k, v in t.params.items() if k in SPACE} for t in trials] == POINTS
    assert all(t.rows[-1]["step"] == 8 and not t.failure for t in trials)
    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    picked = next(t for t in trials if t.trial_id == metrics["trial_id"])
    assert best["train"]["augment"]["method"] == picked.params["augment.method"]
    assert best["train"]["consistency"]["alpha"] == pytest.approx(picked.params["consistency.alpha"])
    assert metrics["eval_prediction_mismatches"] == 0
