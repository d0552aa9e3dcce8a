"""A GLUE-shaped dataset (test labels -1, as GLUE ships them) runs search and export; export writes the test
split's predictions instead of scores."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from raytune_llm.cli.main import main
from tests.conftest import NEGATIVE, POSITIVE, tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_glue_shaped_data_searches_and_exports_test_predictions(ray_session: None, tiny_bert: Path,
                                                                 tmp_path: Path) -> None:
    data = tmp_path / "glue"
    data.mkdir()
    rows = [{"sentence": t, "label": 1} for t in POSITIVE] + [{"sentence": t, "label": 0} for t in NEGATIVE]
    pd.DataFrame(rows * 4).to_parquet(data / "train.parquet")
    pd.DataFrame(rows).to_parquet(data / "validation.parquet")
    pd.DataFrame([{"sentence": r["sentence"], "label": -1} for r in rows]).to_parquet(data / "test.parquet")
    cfg = tiny_experiment(tiny_bert, data, tmp_path / "runs", **{
        "data.text_column": "sentence", "data.labels": ["negative", "positive"], "train.max_steps": 4,
        "train.eval_every": 2, "search.num_trials": 1, "search.scheduler": {"name": "fifo"}})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    out = tmp_path / "best"
    assert main(["export", str(tmp_path / "runs" / "t"), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test" not in metrics and metrics["test_predictions"] == {"file": "test_predictions.jsonl",
                                                                      "rows": len(rows)}
    lines = [json.loads(line) for line in (out / "test_predictions.jsonl").read_text().splitlines()]
    assert [r["index"] for r in lines] == list(range(len(rows)))
    assert {r["prediction"] for r in lines} <= {"negative", "positive"}
