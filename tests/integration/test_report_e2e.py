"""A real small search whose trials end every way a trial can (done, stopped by ASHA, failed by the guard,
errored), with every tracker on; then `report`, opened in a real headless Chromium with every request that is
not a file blocked, and the tracking files read back with the tools users open them with."""

from __future__ import annotations

import contextlib
import io
import json
import struct
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
import yaml

from raytune_llm.cli.main import main
from raytune_llm.results.trials import load_trials, step_trace
from tests.browser import visit
from tests.conftest import tiny_experiment
from tests.unit.test_report import SECTIONS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
GOOD, SLOW, DIVERGING = 3.0e-3, 1.0e-7, 1.0e30


@pytest.fixture(scope="module")
def searched(ray_session: None, tiny_bert: Path, sentiment_dir: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("every-outcome")
    cfg = tiny_experiment(
        tiny_bert, sentiment_dir, tmp_path / "runs",
        **{"search.num_trials": 4, "search.max_concurrent_trials": 1, "search.searcher": {"name": "random"},
           "search.scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
           "search.space": {"optimizer.lr": {"type": "categorical", "choices": [GOOD, SLOW, DIVERGING]},
                            "reinit_top_layers": {"type": "categorical", "choices": [0, 99]}},
           # In this order: a good recipe, one ASHA cuts at a rung behind it, one that diverges, one
           # that raises (the model has 2 layers).
           "search.points_to_evaluate": [{"optimizer.lr": GOOD, "reinit_top_layers": 0},
                                         {"optimizer.lr": SLOW, "reinit_top_layers": 0},
                                         {"optimizer.lr": DIVERGING, "reinit_top_layers": 0},
                                         {"optimizer.lr": GOOD, "reinit_top_layers": 99}],
           "tracking.mlflow": {"enabled": True}},
    )
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        assert main(["search", str(path)]) == 0
    (tmp_path / "printed.txt").write_text(printed.getvalue())
    return tmp_path / "runs" / "t"


def test_the_terminal_says_where_to_look_and_nothing_misleading(searched: Path) -> None:
    printed = (searched.parent.parent / "printed.txt").read_text()
    assert f"watch it live: raytune-llm report {searched}" in printed
    assert f"tensorboard --logdir {searched / 'tensorboard'}" in printed
    assert f"optuna-dashboard {searched / 'optuna.journal'}" in printed
    assert f"mlflow ui --backend-store-uri sqlite:///{searched / 'mlflow.db'}" in printed
    # Not Tune's box and its TensorBoard command for a temporary folder, nor a progress bar per split.
    assert "Configuration for experiment" not in printed and "/tmp/ray/session" not in printed
    assert "examples/s" not in printed
    assert sum(line.startswith(("tokenising", "tokenised")) for line in printed.splitlines()) == 2


def test_report_of_a_real_search_with_every_outcome(searched: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(["report", str(searched), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["status", str(searched), "--json"]) == 0
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


def _events(folder: Path) -> list[Any]:
    """Every event of a TensorBoard event folder (TFRecord framing: length, crc, payload, crc)."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for path in sorted(folder.glob("**/events.out.tfevents.*")):
        data = path.read_bytes()
        i = 0
        while i + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            events.append(Event.FromString(data[i + 12:i + 12 + length]))
            i += 12 + length + 4
    return events


def test_tensorboard_mlflow_and_the_optuna_journal_hold_every_trial(searched: Path) -> None:
    trials = {t.trial_id: t for t in load_trials(searched)}

    # TensorBoard: a folder per trial; scalars at optimizer steps, every step's loss, and the HParams view.
    for trial_id, trial in trials.items():
        events = _events(searched / "tensorboard" / trial_id)
        tags = {(v.tag, e.step) for e in events if e.HasField("summary") for v in e.summary.value}
        plugins = {v.metadata.plugin_data.plugin_name for e in events if e.HasField("summary")
                   for v in e.summary.value}
        assert "hparams" in plugins, trial_id
        if trial.rows:  # the errored trial reported nothing, but is in the HParams view
            assert ("eval_loss", trial.rows[0]["step"]) in tags
            steps = {s for r in trial.rows for s, _ in step_trace(r, "step_losses")}
            assert {s for t, s in tags if t == "train_loss_per_step"} == steps and 1 in steps

    # MLflow: one run per trial in the run folder's database, tagged with the trial's outcome.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{searched / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "t"]
    runs = client.search_runs([experiment.experiment_id])
    outcomes = sorted(r.data.tags["outcome"] for r in runs)
    assert outcomes == sorted(t.outcome for t in trials.values())
    assert all("optimizer.lr" in r.data.params for r in runs)

    # The Optuna journal: optuna-dashboard's own loader and its web API see the search, as the searcher saw it.
    from optuna_dashboard import wsgi
    from optuna_dashboard._storage_url import get_storage

    storage = get_storage(str(searched / "optuna.journal"))
    environ: dict[str, Any] = {"PATH_INFO": "/api/studies"}
    setup_testing_defaults(environ)
    answered: list[str] = []
    body = wsgi(storage)(environ, lambda status, headers, *exc: answered.append(status))
    assert answered == ["200 OK"]
    studies = json.loads(b"".join(body))["study_summaries"]
    assert len(studies) == 1 and studies[0]["study_name"].startswith("t-")
    import optuna

    study = optuna.load_study(study_name=studies[0]["study_name"], storage=storage)
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "PRUNED"]  # done, guard-failed (worst value), error, ASHA
    failed = [t for t in study.trials if t.constraints.get("raytune_llm.failed", 0.0) > 0]
    assert [t.state.name for t in failed] == ["COMPLETE"]  # the guard-failed one: infeasible in the journal too
