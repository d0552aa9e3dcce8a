"""`export --refit` on a real run whose eval split was held out of train: the exported model is the chosen config
trained again by the training loop (in export's process for this single-worker config; once as a Ray Train run,
as a multi-worker config's refit trains) on every labelled row (train + eval), for exactly the step count asked;
with several seeds the median one; a refit that fails falls back to the search's checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from raytune_llm.cli.main import main
from tests.conftest import tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

# sentiment_dir's train split: 96 rows; 16 held out as eval leave the search 80, i.e. 10 steps an epoch of 8 rows.
ROWS, HOLDOUT, BATCH = 96, 16, 8


@pytest.fixture(scope="module")
def run_dir(ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("refit")
    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp / "runs", **{
        "data.eval_split": "none", "data.eval_holdout": HOLDOUT,  # no eval split: carved out of train
        "train.max_steps": None, "train.epochs": 1, "train.eval_every": 4, "train.optimizer.lr": 1e-3,
        "search.num_trials": 1,
        "search.space": {"optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}},
    })
    path = tmp / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    return tmp / "runs" / "t"


def history(run_dir: Path, seed: int) -> list[dict]:
    (folder,) = (run_dir / "refit").glob(f"*-seed{seed}*")
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def test_refit_best_trains_on_train_and_eval_for_the_picks_step_count_and_exports_the_median_seed(
        run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out), "--refit-steps", "best", "--refit-seeds", "2"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    refit = m["refit"]
    assert refit["rows"] == ROWS and refit["steps_rule"] == "best"
    assert refit["steps"] == m["trial"]["step"]  # exactly the pick's step count, on the larger data
    assert refit["seeds"] == [42, 43] and refit["spread"]["by"] == "test_loss"
    values = refit["spread"]["values"]
    assert refit["chosen_seed"] == int(max(values, key=values.get))  # of two by a loss, the worse one: the median
    assert m["test"]["test_loss"] == pytest.approx(values[str(refit["chosen_seed"])])
    for seed in (42, 43):
        assert {r["total_steps"] for r in history(run_dir, seed)} == {m["trial"]["step"]}
    assert m["eval_prediction_mismatches"] is None and "not applicable" in m["eval_self_check"]
    assert m["trial"]["eval_loss"] > 0 and m["checkpoint"] == refit["checkpoint"] != refit["search_checkpoint"]
    assert not (out / "trial_eval_predictions.json").exists()
    printed = capsys.readouterr().out
    assert f"refit on {ROWS} rows (train + eval)" in printed and "seeds 42, 43 by test_loss" in printed


def test_refit_full_runs_the_whole_budget_on_all_labelled_rows_by_default(
        run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from raytune_llm.search import refit as refit_module

    monkeypatch.setattr(refit_module, "trains_here", lambda *_: False)  # as a Ray Train run, as DDP configs do
    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0  # on by default: data.eval_holdout is set
    m = json.loads((out / "metrics.json").read_text())
    refit = m["refit"]
    assert refit["steps_rule"] == "full" and refit["steps"] == ROWS // BATCH  # one epoch of 96 rows, not of 80
    assert refit["spread"] is None and refit["seeds"] == [42]
    assert len(datasets.load_from_disk(str(run_dir / "prepared" / "refit_data"))["train"]) == ROWS
    assert (out / "model" / "model.safetensors").is_file() and "test" in m


def test_no_refit_exports_the_search_checkpoint_with_its_self_check(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out), "--no-refit"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["refit"] is None and m["eval_prediction_mismatches"] == 0


def test_a_failed_refit_falls_back_to_the_search_checkpoint(run_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    from raytune_llm.results.refit import RefitRun
    from raytune_llm.search import refit

    def diverged(cfg: object, info: object, spec: dict, name: str) -> RefitRun:
        return RefitRun(spec["train"]["seed"], {"step": 3, "stop_reason": "non_finite", "stop_detail": "nan"}, None)

    monkeypatch.setattr(refit, "_train_here", lambda cfg, spec, folder: diverged(cfg, None, spec, ""))
    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["refit"] is None and "non_finite at step 3" in m["refit_failed"] and m["eval_prediction_mismatches"] == 0
    assert "exporting the search's checkpoint" in capsys.readouterr().out
