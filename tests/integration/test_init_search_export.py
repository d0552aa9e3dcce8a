"""`raytune-llm init` end to end: the drafted YAML runs a real search as it stands (only its length cut short with
--set) and its best trial exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from raytune_llm.cli.main import main
from raytune_llm.results.trials import load_trials

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_init_then_search_then_export(ray_session: None, tiny_bert: Path, sentiment_dir: Path,
                                      tmp_path: Path) -> None:
    draft = tmp_path / "draft.yaml"
    assert main(["init", "--model", str(tiny_bert), "--data", str(sentiment_dir), "--budget", "2-trials",
                 "--out", str(draft)]) == 0
    cfg = yaml.safe_load(draft.read_text())
    assert cfg["task"] == "sequence_classification" and cfg["data"]["labels"] == ["neg", "pos"]
    runs = tmp_path / "runs"
    assert main(["search", str(draft), "--set", "train.max_steps=4", "--set", "train.eval_every=2",
                 "--set", f"run.storage_path={runs}",
                 # a tiny random model sits at chance for a while
                 "--set", "stability.chance_level.enabled=false"]) == 0
    run_dir = runs / cfg["run"]["name"]
    trials = load_trials(run_dir)
    assert len(trials) == 2 and all(t.status == "TERMINATED" for t in trials)
    assert "default" in {t.recipe for t in trials}  # the portfolio start the draft left on
    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out), "--no-refit"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_prediction_mismatches"] == 0
    assert json.loads((out / "labels.json").read_text()) == ["neg", "pos"]
