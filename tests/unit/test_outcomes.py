"""One definition of outcomes: results, pruning and the live table agree on what failed and what is best."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from raytune_llm.core.outcomes import BestSoFar, better, outcome, real_value, searcher_verdict
from raytune_llm.results.choice import choose, choose_for
from raytune_llm.results.trials import TrialRecord
from raytune_llm.schema import SearchConfig

DONE = {"step": 10, "total_steps": 10, "stop_reason": ""}


def record(tid: str, rows: list[dict[str, Any]], status: str = "TERMINATED") -> TrialRecord:
    return TrialRecord(tid, {"optimizer.lr": 1e-3}, status, rows=rows)


def test_plateau_is_a_healthy_early_stop_that_keeps_its_score() -> None:
    t = record("p", [{"eval_accuracy": 0.7, "step": 4, "total_steps": 10, "stop_reason": ""},
                     {"eval_accuracy": 0.72, "step": 6, "total_steps": 10, "stop_reason": "plateau"}])
    assert t.outcome == "early-stopped" and not t.failed
    assert t.best_row("eval_accuracy", "max")["eval_accuracy"] == 0.72
    assert choose([t], "eval_accuracy", "max").trial is t


@pytest.mark.parametrize("reason", ["non_finite", "loss_spike", "grad_explosion", "chance_level"])
def test_guard_failures_never_win_while_a_healthy_trial_exists(reason: str) -> None:
    failed = record("f", [{"eval_accuracy": 0.0, "real_eval_accuracy": 0.95, "step": 3, "total_steps": 10,
                           "stop_reason": reason}])
    healthy = record("h", [{"eval_accuracy": 0.6, **DONE}])
    assert failed.outcome == f"unstable:{reason}" and failed.failed
    choice = choose([failed, healthy], "eval_accuracy", "max")
    assert choice.trial is healthy and not choice.fallback


def test_with_no_healthy_trial_the_best_guard_stopped_one_is_the_fallback() -> None:
    a = record("a", [{"eval_accuracy": 0.55, "step": 2, "total_steps": 10, "stop_reason": ""},
                     {"eval_accuracy": 0.0, "real_eval_accuracy": 0.6, "step": 4, "total_steps": 10,
                      "stop_reason": "chance_level"}])
    b = record("b", [{"eval_accuracy": 0.0, "real_eval_accuracy": 0.7, "step": 4, "total_steps": 10,
                      "stop_reason": "chance_level"}])
    errored = record("e", [{"eval_accuracy": 0.9, "step": 2, "total_steps": 10}], status="ERROR")
    choice = choose([a, b, errored], "eval_accuracy", "max")
    assert choice.fallback and choice.trial is b and choice.score("eval_accuracy") == 0.7
    # By the real value of each report: trial a's best is its 0.6 at the stop, not the 0.55 before it.
    assert real_value(a.fallback_row("eval_accuracy", "max"), "eval_accuracy") == 0.6


def test_better_and_outcome_rules() -> None:
    assert better(0.3, 0.2, "max") and better(0.2, 0.3, "min") and better(1.0, None, "max")
    assert not better(0.2, 0.2, "max")
    assert outcome("TERMINATED", DONE) == "done"
    assert outcome("TERMINATED", {"step": 4, "total_steps": 10}) == "early-stopped"  # ASHA, time budget
    assert outcome("ERROR", {}, "torch.OutOfMemoryError: CUDA out of memory") == "error:oom"
    assert outcome("RUNNING", {"step": 4, "total_steps": 10}) == "running"


# ---------------------------------------------------------------- pruning follows export's rule


class Pruner:
    """PruneStoppedCheckpoints driven by hand, recording which trials' checkpoints it deletes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, mode: str = "max", **search: Any) -> None:
        from raytune_llm.search import pruning

        self.removed: list[str] = []
        # Deleted trials are swept again later (late writes): record each trial once, in the order first deleted.
        monkeypatch.setattr(pruning, "remove_checkpoints", lambda root, tid, staged_only:
                            staged_only or tid in self.removed or self.removed.append(tid))
        self.cb = pruning.PruneStoppedCheckpoints("/unused", SearchConfig(metric="eval_accuracy", mode=mode, **search))

    def result(self, tid: str, value: float, step: int, reason: str = "", real: float | None = None,
               **extra: Any) -> None:
        res = {"eval_accuracy": value, "step": step, "total_steps": 10, "stop_reason": reason, **extra}
        if real is not None:
            res["real_eval_accuracy"] = real
        self.cb.on_trial_result(0, [], SimpleNamespace(trial_id=tid), res)

    def complete(self, tid: str) -> None:
        self.cb.on_trial_complete(0, [], SimpleNamespace(trial_id=tid))


def test_an_early_stopped_trial_is_kept_while_a_better_one_may_still_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pruner(monkeypatch)
    p.result("b", 0.9, 2)  # b leads, still running
    p.result("a", 0.8, 2)
    p.complete("a")  # ASHA stops a: the old rule deleted it, b being "best so far"
    assert p.removed == []
    p.result("b", 0.0, 4, reason="loss_spike", real=0.3)  # ... then the guard stops b as failing
    p.complete("b")
    p.cb.on_experiment_end([])
    assert p.removed == ["b"]  # a is what export picks: its checkpoints are there


def test_an_early_stopped_trial_is_pruned_once_an_ended_healthy_trial_beats_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pruner(monkeypatch)
    p.result("a", 0.8, 2)
    p.complete("a")
    p.result("c", 0.85, 10)
    p.complete("c")  # c ran to the end with a better value: a can never be exported now
    assert p.removed == ["a"]


def test_with_objectives_pruning_keeps_what_the_pareto_pick_may_take(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beaten on the metric alone is not beaten: within the tolerance, fewer trainable weights can be the pick."""
    p = Pruner(monkeypatch, objectives=[{"metric": "trainable_params", "mode": "min"}], pareto_tolerance=0.05)
    p.result("full", 0.9, 10, trainable_params=1000)
    p.complete("full")
    p.result("lora", 0.87, 2, trainable_params=10)  # stopped early, 0.03 below full: on the front, within 0.05
    p.complete("lora")
    p.result("worse", 0.86, 2, trainable_params=2000)  # dominated by full: never on the front
    p.complete("worse")
    p.result("far", 0.8, 2, trainable_params=1)  # on the front, but 0.1 below full: outside the tolerance for good
    p.complete("far")
    assert p.removed == ["worse", "far"]
    trials = [record(tid, [{"eval_accuracy": acc, "trainable_params": n, **DONE}])
              for tid, acc, n in (("full", 0.9, 1000), ("lora", 0.87, 10), ("worse", 0.86, 2000), ("far", 0.8, 1))]
    search = SearchConfig(metric="eval_accuracy", mode="max", pareto_tolerance=0.05,
                          objectives=[{"metric": "trainable_params", "mode": "min"}])
    assert choose_for(trials, search).trial.trial_id == "lora"  # what pruning kept for


def test_a_checkpoint_written_after_its_trial_was_pruned_is_deleted_too(tmp_path: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopped Train trial's workers can finish writing a checkpoint after Tune reported the trial complete
    (CI saw one survive); it goes at the next trial's end, and what lands later still at the search's end. A
    deleted trial's folder is listed a bounded number of times, however many trials follow (cloud storage)."""
    from collections import Counter

    from raytune_llm.search import pruning

    listed: Counter[str] = Counter()
    real = pruning.remove_checkpoints
    monkeypatch.setattr(pruning, "remove_checkpoints",
                        lambda root, tid, staged_only: (listed.update([tid]), real(root, tid, staged_only)))
    cb = pruning.PruneStoppedCheckpoints(str(tmp_path), SearchConfig(metric="eval_accuracy", mode="max"))
    folder = tmp_path / "train" / "a"

    def report(tid: str, value: float, step: int) -> None:
        cb.on_trial_start(0, [], SimpleNamespace(trial_id=tid, storage=SimpleNamespace(trial_dir_name=tid)))
        cb.on_trial_result(0, [], SimpleNamespace(trial_id=tid),
                           {"eval_accuracy": value, "step": step, "total_steps": 10, "stop_reason": ""})
        cb.on_trial_complete(0, [], SimpleNamespace(trial_id=tid))

    report("c", 0.9, 10)
    (folder / "checkpoint_1").mkdir(parents=True)
    report("a", 0.8, 2)  # stopped early, beaten by c: pruned
    assert not list(folder.glob("checkpoint_*"))
    (folder / "checkpoint_2").mkdir()  # its worker was still writing
    report("d", 0.85, 10)
    assert not list(folder.glob("checkpoint_*"))
    for tid in "efgh":
        report(tid, 0.85, 10)
    (folder / "checkpoint_3").mkdir()
    cb.on_experiment_end([])
    assert not list(folder.glob("checkpoint_*")) and folder.is_dir()
    assert listed["a"] == 3 * 2  # deleted, swept once more, swept at the end; each in train/ and its own folder
    resumed = pruning.PruneStoppedCheckpoints(str(tmp_path), SearchConfig(metric="eval_accuracy", mode="max"))
    resumed.set_state(cb.get_state())
    assert resumed.removed == {"a"}


def test_what_a_kept_trials_killed_processes_staged_is_swept_and_its_checkpoints_stay(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints are staged in the trial's folder before they are reported (local storage); a Train worker killed
    when its trial was stopped leaves its staging folder. It goes at the trial's end, at the next trial's end and at
    the search's end (late writes); the trial's checkpoints stay. On cloud storage nothing is staged or listed."""
    from raytune_llm.core.storage import STAGING_PREFIX
    from raytune_llm.search import pruning

    def report(cb: Any, tid: str) -> None:
        cb.on_trial_start(0, [], SimpleNamespace(trial_id=tid, storage=SimpleNamespace(trial_dir_name=tid)))
        cb.on_trial_result(0, [], SimpleNamespace(trial_id=tid),
                           {"eval_accuracy": 0.9, "step": 10, "total_steps": 10, "stop_reason": ""})
        cb.on_trial_complete(0, [], SimpleNamespace(trial_id=tid))

    cb = pruning.PruneStoppedCheckpoints(str(tmp_path), SearchConfig(metric="eval_accuracy", mode="max"))
    folder = tmp_path / "train" / "a"
    (folder / "checkpoint_1").mkdir(parents=True)
    (folder / f"{STAGING_PREFIX}1").mkdir()
    report(cb, "a")
    assert [p.name for p in folder.iterdir()] == ["checkpoint_1"]
    (folder / f"{STAGING_PREFIX}2").mkdir()  # a late write
    report(cb, "b")
    (folder / f"{STAGING_PREFIX}3").mkdir()
    cb.on_experiment_end([])
    assert [p.name for p in folder.iterdir()] == ["checkpoint_1"]

    listed: list[str] = []
    monkeypatch.setattr(pruning, "remove_checkpoints", lambda root, tid, staged_only: listed.append(tid))
    on_cloud = pruning.PruneStoppedCheckpoints("s3://bucket/run", SearchConfig(metric="eval_accuracy", mode="max"))
    report(on_cloud, "a")
    on_cloud.on_experiment_end([])
    assert listed == []


def test_failed_trials_keep_checkpoints_until_the_end_and_the_best_is_kept_as_fallback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pruner(monkeypatch)
    for tid, real in (("x", 0.6), ("y", 0.7)):
        p.result(tid, 0.0, 4, reason="chance_level", real=real)
        p.complete(tid)
    assert p.removed == []  # until the search ends
    p.cb.on_experiment_end([])
    assert p.removed == ["x"]  # y is the fallback export picks


def test_pruning_memory_survives_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pruner(monkeypatch)
    p.result("a", 0.8, 2)
    p.complete("a")
    state = p.cb.get_state()
    resumed = Pruner(monkeypatch)
    resumed.cb.set_state(state)  # what Tune does on `resume`
    resumed.result("c", 0.85, 10)
    resumed.complete("c")
    assert resumed.removed == ["a"]


def test_stop_pattern_says_once_when_most_trials_stop_for_the_same_reason() -> None:
    from raytune_llm.search.progress import StopPattern

    pattern = StopPattern()
    for tid in "abcd":
        pattern.seen(tid)
    for tid in "abc":
        pattern.note(tid, "chance_level", {"step": 50, "total_steps": 200})
    notice = pattern.notice()
    assert "3 of 4 trials" in notice and "chance_level" in notice and "at_fraction" in notice
    assert pattern.notice() == ""  # once


def test_ties_are_broken_as_export_breaks_them(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pruner(monkeypatch)
    p.result("first", 0.8, 10)
    p.complete("first")  # ended, 0.8
    p.result("later", 0.8, 2)
    p.complete("later")  # early, the same 0.8: export picks the earlier trial, so this one can go
    assert p.removed == ["later"]
    q = Pruner(monkeypatch)
    for tid in ("x", "y"):  # failed trials with equal real values: the fallback is the earlier one
        q.result(tid, 0.0, 4, reason="chance_level", real=0.6)
        q.complete(tid)
    q.cb.on_experiment_end([])
    assert q.removed == ["y"]
    trials = [record(t, [{"eval_accuracy": 0.0, "real_eval_accuracy": 0.6, "step": 4, "total_steps": 10,
                          "stop_reason": "chance_level"}]) for t in ("x", "y")]
    assert choose(trials, "eval_accuracy", "max").trial.trial_id == "x"


# ---------------------------------------------------------------- robust reads outcomes the same way


def test_robust_reruns_guard_stopped_configs_when_no_trial_is_healthy() -> None:
    """Trials that reported finite values but were stopped as unstable are re-run (by their real values), not
    reported as having "no finite metric"; with a healthy trial, only healthy ones are picked."""
    from raytune_llm.results.choice import top_configs

    a = record("a", [{"eval_accuracy": 0.0, "real_eval_accuracy": 0.6, "step": 4, "total_steps": 10,
                      "stop_reason": "chance_level"}])
    b = record("b", [{"eval_accuracy": 0.0, "real_eval_accuracy": 0.7, "step": 4, "total_steps": 10,
                      "stop_reason": "loss_spike"}])
    errored = record("e", [{"eval_accuracy": 0.9, "step": 2, "total_steps": 10}], status="ERROR")
    assert [t.trial_id for t in top_configs([a, b, errored], "eval_accuracy", "max", 2)] == ["b", "a"]
    healthy = record("h", [{"eval_accuracy": 0.5, **DONE}])
    assert [t.trial_id for t in top_configs([a, b, healthy], "eval_accuracy", "max", 2)] == ["h"]
    assert top_configs([errored], "eval_accuracy", "max", 2) == []


def test_export_by_robust_tells_a_user_who_ran_robust_to_continue_it(tmp_path: Any) -> None:
    from raytune_llm.core.errors import UserError
    from raytune_llm.results.choice import robust_choice

    with pytest.raises(UserError, match=r"run `raytune-llm robust .*` first"):
        robust_choice(tmp_path)
    (tmp_path / "robust").mkdir()
    (tmp_path / "robust" / "experiment_state-2026.json").write_text("{}")
    with pytest.raises(UserError, match=r"did not finish .* run `raytune-llm robust .*` again to continue"):
        robust_choice(tmp_path)


def test_best_so_far_counts_what_export_counts() -> None:
    from raytune_llm.core.outcomes import BestSoFar
    from raytune_llm.results.trials import TrialRecord

    rows = {"a": [{"eval_accuracy": 0.6, "stop_reason": ""}, {"eval_accuracy": 0.7, "stop_reason": "plateau"}],
            "b": [{"eval_accuracy": 0.9, "stop_reason": ""},
                  {"eval_accuracy": 0.0, "real_eval_accuracy": 0.5, "stop_reason": "loss_spike"}]}
    best = BestSoFar("eval_accuracy", "max")
    for tid, reports in rows.items():
        for r in reports:
            best.add(tid, r)
    assert best.get("a") == 0.7  # a healthy early stop (plateau) keeps its score
    assert best.get("b") is None  # a trial the guard stopped as failing never counts
    for tid, reports in rows.items():  # ... exactly as export reads the trials afterwards
        row = TrialRecord(tid, {}, "TERMINATED", reports).best_row("eval_accuracy", "max")
        assert (row or {}).get("eval_accuracy") == best.get(tid)


def test_robust_reads_its_reruns_of_a_config_whose_seed_was_searched() -> None:
    """With `seed` in the space, a pick's params hold a seed the re-runs replace; they are the same config."""
    from raytune_llm.results.robustness import summarise
    from raytune_llm.runs.layout import RunInfo
    from raytune_llm.schema import ExperimentConfig

    cfg = ExperimentConfig.model_validate({"model": {"name": "m"}, "data": {"source": "d"}, "search": {
        "metric": "eval_accuracy", "mode": "max", "space": {"seed": {"type": "int", "low": 0, "high": 9}}}})
    info = RunInfo(config=cfg.model_dump(mode="json"), model_path="m", tokenizer_path="m", data_path="d",
                   label_names=["a", "b"], sizes={"train": 10}, chance_value=0.0, chance_metric="")
    pick = TrialRecord("p", {"optimizer.lr": 1e-3, "seed": 7}, "TERMINATED", rows=[{"eval_accuracy": 0.9, **DONE}])
    runs = [TrialRecord(f"r{s}", {"params": {"optimizer.lr": 1e-3, "seed": s}}, "TERMINATED",
                        rows=[{"eval_accuracy": 0.8 + (s - 40) / 100, **DONE}]) for s in (43, 44)]
    summary = summarise([pick], runs, info, "mean")
    assert [c["runs"] for c in summary["configs"]] == [["r43", "r44"]]
    assert summary["configs"][0]["mean"] == pytest.approx(0.835)


def test_of_equal_reports_the_pick_is_the_later_whose_checkpoint_ray_keeps() -> None:
    t = record("t", [{"eval_accuracy": 0.9, "step": 2, "total_steps": 10, "stop_reason": ""},
                     {"eval_accuracy": 0.9, "step": 4, "total_steps": 10, "stop_reason": ""},
                     {"eval_accuracy": 0.8, **DONE}])
    assert t.best_row("eval_accuracy", "max")["step"] == 4
    assert choose([t], "eval_accuracy", "max").row["step"] == 4
    # A trial that never learnt (every evaluation the same) and was stopped at its third: the fallback is the stop's
    # report, whose checkpoint is the latest Ray keeps (the first one's is gone with keep_checkpoints: 1).
    stuck = record("s", [{"eval_accuracy": 0.5, "step": 2, "total_steps": 10, "stop_reason": ""},
                         {"eval_accuracy": 0.5, "step": 4, "total_steps": 10, "stop_reason": ""},
                         {"eval_accuracy": 0.0, "real_eval_accuracy": 0.5, "step": 6, "total_steps": 10,
                          "stop_reason": "chance_level"}])
    assert choose([stuck], "eval_accuracy", "max").row["step"] == 6


def test_export_exports_the_chosen_reports_checkpoint_or_says_why_not(tmp_path: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Never another report's checkpoint in its place: status, metrics.json and the self-check describe the one
    exported."""
    from raytune_llm.core.errors import UserError
    from raytune_llm.results import export

    kept = tmp_path / "checkpoint_000001"
    kept.mkdir()
    t = record("t", [{"eval_accuracy": 0.8, "step": 2, "checkpoint_path": str(kept), **{"stop_reason": ""}},
                     {"eval_accuracy": 0.9, "step": 4, "checkpoint_path": str(tmp_path / "checkpoint_000002")}])
    row = t.best_row("eval_accuracy", "max")
    with pytest.raises(UserError, match=r"the checkpoint of trial t at step 4 is gone"):
        export._checkpoint_for(str(tmp_path), t, row)  # the step-2 checkpoint is there, and is not it
    assert export._checkpoint_for(str(tmp_path), t, t.rows[0]) == kept
    early = record("e", [{"eval_accuracy": 0.0, "real_eval_accuracy": 0.5, "step": 3, "stop_reason": "non_finite"}])
    with pytest.raises(UserError, match=r"stopped before its first evaluation"):
        export._checkpoint_for(str(tmp_path), early, early.rows[0])

    def unreachable(run_root: str, path: str) -> Any:
        raise UserError("run.storage_path: cannot open s3://bucket/run: access denied")

    monkeypatch.setattr(export, "fetch_checkpoint", unreachable)
    with pytest.raises(UserError, match=r"access denied"):  # said as it is, not replaced by another report
        export._checkpoint_for("s3://bucket/run", t, row)


# ---------------------------------------------------------------- a run that ended at chance failed (#24.11)

AT_CHANCE = {"at_chance": True}


@pytest.mark.parametrize(("last", "expected"), [
    ({"eval_accuracy": 0.9, **DONE, **AT_CHANCE}, "at-chance:done"),  # ran its budget, learnt nothing
    ({"eval_accuracy": 0.9, "step": 4, "total_steps": 10, "stop_reason": "", **AT_CHANCE}, "at-chance:early-stopped"),
    ({"eval_accuracy": 0.9, "step": 6, "total_steps": 10, "stop_reason": "plateau", **AT_CHANCE},
     "at-chance:early-stopped"),
])
def test_a_run_that_ended_at_chance_failed_whoever_stopped_it(last: dict[str, Any], expected: str) -> None:
    """Majority-class accuracy on imbalanced labels (0.9 here) is no result: a healthy trial with a lower accuracy
    that learnt something is the pick; the at-chance one is only the fallback, said so."""
    stuck = record("s", [{**last, "step": 2}, last])
    learnt = record("l", [{"eval_accuracy": 0.85, **DONE, "at_chance": False}])
    assert stuck.outcome == expected and stuck.failed and stuck.failure == "ended_at_chance"
    assert stuck.best_row("eval_accuracy", "max") is None
    assert choose([stuck, learnt], "eval_accuracy", "max").trial is learnt
    fallback = choose([stuck], "eval_accuracy", "max")
    assert fallback.trial is stuck and fallback.fallback and fallback.score("eval_accuracy") == 0.9
    assert searcher_verdict(False, last, "eval_accuracy") == "infeasible"


def test_a_trial_that_left_chance_once_is_not_at_chance() -> None:
    t = record("t", [{"eval_accuracy": 0.5, "step": 5, "total_steps": 10, "stop_reason": "", "at_chance": False}])
    assert t.outcome == "early-stopped" and not t.failed and t.failure == ""


def test_the_live_best_never_counts_a_run_still_at_chance() -> None:
    best = BestSoFar("eval_accuracy", "max")
    best.add("t", {"eval_accuracy": 0.9, "stop_reason": "", "at_chance": True})
    assert best.get("t") is None
    # Left chance: a healthy trial, whose best is over all its reports, as export's (best_row) is.
    best.add("t", {"eval_accuracy": 0.8, "stop_reason": "", "at_chance": False})
    rows = [{"eval_accuracy": 0.9, **DONE, "step": 5, "at_chance": True}, {"eval_accuracy": 0.8, **DONE}]
    assert best.get("t") == record("t", rows).best_row("eval_accuracy", "max")["eval_accuracy"] == 0.9


def test_pruning_keeps_an_at_chance_trial_only_as_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pruner(monkeypatch)
    p.result("stuck", 0.9, 10, at_chance=True)
    p.complete("stuck")
    assert p.removed == []  # kept until the end: it may be the fallback
    p.result("good", 0.8, 10, at_chance=False)
    p.complete("good")
    p.cb.on_experiment_end([])
    assert p.removed == ["stuck"]  # a healthy pick exists: the failure's checkpoints go


def test_status_says_what_share_of_the_steps_went_into_failed_and_at_chance_runs(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from raytune_llm.cli.status import _failed_compute

    trials = [record("a", [{"eval_accuracy": 0.9, **DONE, **AT_CHANCE}]),
              record("b", [{"eval_accuracy": 0.9, "step": 5, "total_steps": 10, "stop_reason": "", **AT_CHANCE}]),
              record("c", [{"eval_accuracy": 0.0, "step": 5, "total_steps": 10, "stop_reason": "loss_spike"}]),
              record("d", [{"eval_accuracy": 0.8, **DONE}])]
    line = _failed_compute(trials)
    assert line.startswith("failed: 3 of 4 trials, 67% of the optimizer steps; 2 ended at chance level (50% of the "
                           "steps)")
