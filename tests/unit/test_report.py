"""`raytune-llm report` on made-up run folders (no Ray): what the page and summary.json say, that the page stands
alone in a real browser, the re-run command, comparison of seeds, and scale."""

from __future__ import annotations

import csv
import html
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from raytune_llm.cli.main import main
from raytune_llm.config.loading import load_config
from raytune_llm.report import FIGURES
from raytune_llm.report.collect import load_run
from raytune_llm.results.trials import load_trials
from raytune_llm.schema.space import apply_params
from tests.browser import visit
from tests.synthetic_run import write_run

SECTIONS = ["verdict", "compute", "progress", "curves", "stability", "failure-map", "importance", "parallel",
            "robust", "compression", "best"]


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report")
    run = write_run(root / "run", trials=60, steps=100, eval_every=10)
    assert main(["report", str(run), "--out", str(root / "out")]) == 0
    return run, root / "out"


def test_summary_counts_equal_status(reported: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run, out = reported
    summary = json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    assert main(["status", str(run), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert summary["counts"] == status["counts"]
    assert summary["best"]["trial_id"] == status["best_trial"]
    assert sum(summary["groups"].values()) == summary["trials"] == len(status["trials"])
    # Every kind of ending the synthetic run holds is counted where the page shows it.
    assert summary["groups"]["stopped by scheduler"] == sum(summary["scheduler_stops_by_rounds"].values()) > 0
    assert set(summary["guard_stops_by_reason"]) == {"non_finite", "chance_level", "loss_spike", "plateau"}
    assert len(summary["errors"]) == summary["groups"]["error"] > 0
    # Trials that never left chance are failures, whoever ended them: their own group, beside how they ended.
    chance = summary["ended_at_chance"]
    assert chance["trials"] == summary["groups"]["ended at chance"] == sum(
        1 for t in status["trials"] if t["outcome"].startswith("at-chance:")) > 0
    assert sum(chance["stopped_by"].values()) == chance["trials"]
    assert set(chance["stopped_by"]) <= {"budget", "scheduler"}
    assert "ended at chance level" in (out / "index.html").read_text()


def test_each_guard_stop_shows_the_advice_of_the_one_stop_table(reported: tuple[Path, Path]) -> None:
    from raytune_llm.core.stops import STOP_REASONS

    _, out = reported
    summary, page = json.loads((out / "summary.json").read_text()), (out / "index.html").read_text()
    for reason, row in summary["guard_stop_reasons"].items():
        assert row == {"failure": STOP_REASONS[reason].failure, "advice": STOP_REASONS[reason].advice,
                       "setting": STOP_REASONS[reason].setting}
        assert html.escape(STOP_REASONS[reason].advice) in page
    assert summary["guard_stop_reasons"]["plateau"]["failure"] is False


def test_compute_adds_up_and_failed_share_is_the_failed_trials(reported: tuple[Path, Path]) -> None:
    run, out = reported
    summary = json.loads((out / "summary.json").read_text())
    trials = load_trials(run)
    spent = {t.trial_id: t.last.get("time_total_s", 0.0) for t in trials}
    compute = summary["compute"]
    assert compute["total"] == pytest.approx(sum(spent.values()))
    assert compute["failed"] == pytest.approx(sum(spent[t.trial_id] for t in trials if t.failed))
    assert sum(compute["by_group"].values()) == pytest.approx(compute["total"])
    assert sum(compute["by_method"].values()) == pytest.approx(compute["total"])


def test_trials_csv_has_every_trial_with_its_outcome(reported: tuple[Path, Path]) -> None:
    run, out = reported
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert {r["trial_id"]: r["outcome"] for r in rows} == {t.trial_id: t.outcome for t in load_trials(run)}


def test_the_page_stands_alone_in_a_real_browser(reported: tuple[Path, Path]) -> None:
    _, out = reported
    page = out / "index.html"
    text = page.read_text()
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", text), "the page refers to a file or an address"
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == sorted(f"{n}.png" for n in FIGURES)
    seen = visit(page)
    assert seen.errors == []
    assert seen.broken_images == []
    assert [url for url in seen.requests if not url.startswith(("file:", "data:"))] == []
    assert seen.section_ids == SECTIONS
    assert seen.screenshot_colours > 200, "the first screen looks blank"


def test_the_rerun_command_trains_the_best_trials_params(reported: tuple[Path, Path]) -> None:
    _, out = reported
    best = json.loads((out / "summary.json").read_text())["best"]
    words = shlex.split(best["rerun"])
    assert words[:2] == ["raytune-llm", "train"]
    overrides = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    cfg = load_config(words[2], overrides)
    base = load_config(words[2])
    expected = apply_params(base.train, best["params"])
    assert cfg.train.optimizer.lr == pytest.approx(expected.optimizer.lr, rel=1e-5)
    assert cfg.train.peft.method == expected.peft.method


def test_three_seeds_compared_show_their_median(tmp_path: Path) -> None:
    runs = [write_run(tmp_path / f"seed{i}", trials=12, steps=40, eval_every=10, seed=i) for i in range(3)]
    assert main(["report", str(runs[0]), "--compare", str(runs[1]), str(runs[2]), "--out", str(tmp_path / "o")]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [c["name"] for c in summary["compare"]] == ["synthetic", "synthetic"]
    assert all(c["best"] is not None for c in summary["compare"])


def test_best_so_far_never_counts_a_failed_trial(tmp_path: Path) -> None:
    view = load_run(write_run(tmp_path / "r", trials=30, steps=40, eval_every=10, seed=3))
    healthy_best = max(t.best for t in view.trials if t.best is not None)
    line = view.timeline()
    assert line[-1][1] == pytest.approx(healthy_best)
    assert all(b is None or b <= healthy_best for _, b, _, _ in line)


def test_a_run_with_nothing_to_show_still_reports(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", trials=1, steps=20, eval_every=10, seed=1)
    assert main(["report", str(run), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "index.html").is_file()


def test_report_of_a_folder_that_is_not_a_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a raytune-llm run" in err and len(err.splitlines()) == 1


def test_two_thousand_trials_stay_a_small_page(tmp_path: Path) -> None:
    """The scale the issue names: 2,000 trials x 200 steps (timing: benchmarks/report_scale.py)."""
    run = write_run(tmp_path / "big", trials=2000, steps=200, eval_every=10)
    assert main(["report", str(run), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "index.html").stat().st_size < 15 * 2**20
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["trials"] == 2000


def test_report_does_not_start_or_import_ray_or_torch(reported: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = reported
    code = ("import sys; from raytune_llm.cli.main import main; "
            f"assert main(['report', {str(run)!r}, '--out', {str(tmp_path / 'o')!r}]) == 0; "
            "assert main(['status', " + repr(str(run)) + "]) == 0; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'torch')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_step_trace_places_each_value_at_its_optimizer_step() -> None:
    from raytune_llm.results.trials import step_trace

    evaluation = {"step": 4, "step_losses": [0.7, 0.6]}  # steps 3 and 4 completed since the last report
    guard_stop = {"step": 1, "trace_last_step": 2, "step_losses": [0.7, float("nan")]}  # step 2 was refused
    assert step_trace(evaluation, "step_losses") == [(3, 0.7), (4, 0.6)]
    assert step_trace(guard_stop, "step_losses") == [(1, 0.7)]  # the non-finite value is left out
    assert step_trace({"step": 3}, "step_grad_norms") == []


def test_robust_results_show_as_the_spread_over_seeds_and_a_table(tmp_path: Path) -> None:
    from raytune_llm.results.robustness import ROBUST_DIR, SUMMARY_FILE

    run = write_run(tmp_path / "r", trials=10, steps=40, eval_every=10, seed=2)
    (run / ROBUST_DIR).mkdir()
    config = {"source_trial": "00000003", "params": {"optimizer.lr": 1e-4}, "seeds": [43, 44, 45],
              "values": [0.91, 0.93, 0.95], "mean": 0.93, "std": 0.02, "min": 0.91, "max": 0.95, "failed_rate": 0.0,
              "robust_score": 0.91, "runs": ["a", "b", "c"]}
    (run / ROBUST_DIR / SUMMARY_FILE).write_text(json.dumps({
        "metric": "eval_accuracy", "mode": "max", "score": "min", "chance_value": 0.5,
        "chance_metric": "eval_accuracy", "configs": [config]}))
    assert main(["report", str(run), "--out", str(tmp_path / "o")]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["robust_best"] == {k: config[k] for k in ("source_trial", "mean", "std", "min", "failed_rate",
                                                              "robust_score")}
    page = (tmp_path / "o" / "index.html").read_text()
    assert "over seeds 0.93 &plusmn; 0.02 (min 0.91)" in page
    robust_section = page[page.index('id="robust"'):page.index('id="best"')]
    assert "00000003" in robust_section and "optimizer.lr=0.0001" in robust_section


def test_importance_caveats_go_on_the_page_not_the_terminal(recwarn: pytest.WarningsRecorder) -> None:
    """PED-ANOVA warns when a param's value was tried in fewer than 2 trials (a conditional LoRA rank on a run of
    mostly full fine-tuning): the caveat is the importance's note, and nothing is printed as a warning."""
    from raytune_llm.report.importance import _importances

    alphas = ["16", "32", "32", "64", "32", "16", "32", None]  # the demo's: 7 LoRA trials, one full
    scores = [0.968, 0.964, 0.769, 0.946, 0.941, 0.959, 0.747, 0.891]
    points = [({"lr": 10 ** -(3 + i / 4), **({"alpha": a} if a else {})}, scores[i]) for i, a in enumerate(alphas)]
    found, note = _importances(points, "maximize")
    assert set(found) == {"lr", "alpha"}
    assert note == "uncertain for alpha: some of their values were tried in fewer than 2 trials"
    assert not [w for w in recwarn if "regimes" in str(w.message)]


def test_tensorboard_writes_no_nan_for_what_a_failed_trial_lacks(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A failed trial has no best value: left out of the HParams view, not written as NaN (which made tensorboardX
    print a bare "NaN or Inf found in input tensor." to the search's terminal)."""
    import logging
    from types import SimpleNamespace

    from raytune_llm.tracking.tensorboard import TensorBoardCallback

    callback = TensorBoardCallback(str(tmp_path / "tb"), "eval_accuracy", "max")
    failed = SimpleNamespace(trial_id="f", evaluated_params={"optimizer.lr": 1.0}, config={}, last_result={
        "eval_accuracy": 0.0, "step": 3, "total_steps": 10, "stop_reason": "non_finite"})
    with caplog.at_level(logging.WARNING):
        callback.on_trial_result(0, [], failed, failed.last_result)
        callback.on_trial_complete(0, [], failed)
    assert not [r for r in caplog.records if "NaN or Inf" in r.getMessage()]
    assert list((tmp_path / "tb" / "f").glob("**/events.out.tfevents.*"))
