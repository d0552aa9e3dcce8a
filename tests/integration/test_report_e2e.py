"""A real small search whose trials end every way a trial can (done, stopped by ASHA, failed by the guard,
errored), then `report`, opened in a real headless Chromium with every request that is not a file blocked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from raytune_llm.cli.main import main
from tests.browser import visit
from tests.conftest import tiny_experiment
from tests.unit.test_report import SECTIONS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_report_of_a_real_search_with_every_outcome(
    ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, slow, diverging = 3.0e-3, 1.0e-7, 1.0e30
    cfg = tiny_experiment(
        tiny_bert, sentiment_dir, tmp_path / "runs",
        **{"search.num_trials": 4, "search.max_concurrent_trials": 1, "search.searcher": {"name": "random"},
           "search.scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
           "search.space": {"optimizer.lr": {"type": "categorical", "choices": [good, slow, diverging]},
                            "reinit_top_layers": {"type": "categorical", "choices": [0, 99]}},
           # In this order: a good recipe, one ASHA cuts at a rung behind it, one that diverges, one
           # that raises (the model has 2 layers).
           "search.points_to_evaluate": [{"optimizer.lr": good, "reinit_top_layers": 0},
                                         {"optimizer.lr": slow, "reinit_top_layers": 0},
                                         {"optimizer.lr": diverging, "reinit_top_layers": 0},
                                         {"optimizer.lr": good, "reinit_top_layers": 99}]},
    )
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    run_dir = tmp_path / "runs" / "t"
    out = tmp_path / "report"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["status", str(run_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == status["counts"]
    assert summary["best"]["trial_id"] == status["best_trial"]
    groups = summary["groups"]
    assert groups["done"] == 1 and groups["stopped by scheduler"] == 1, groups
    assert groups["failed by guard"] == 1 and groups["error"] == 1, groups
    (stop_round,) = summary["scheduler_stops_by_rounds"]  # ASHA stops only at a rung, and the page names it
    assert int(stop_round) in summary["rungs"] == [1, 2]
    assert "reinit_top_layers=99" in summary["errors"][0]["error"]
    assert summary["compute"]["failed_share"] > 0

    seen = visit(out / "index.html")
    assert seen.errors == []
    assert seen.broken_images == []
    assert [url for url in seen.requests if not url.startswith(("file:", "data:"))] == []
    assert seen.section_ids == SECTIONS
    assert seen.screenshot_colours > 200
