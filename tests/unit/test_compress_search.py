"""`compress --search`'s rules that need no Ray: the space and its start points (valid params, one per method, the
settings `compress` uses without a search), the mapping of a trial's params onto settings, the Pareto front
(failed trials never on it) and the pick rule."""

from __future__ import annotations

import optuna
import pytest

from raytune_llm.cli.main import main
from raytune_llm.core.errors import UserError
from raytune_llm.schema import SearchConfig
from raytune_llm.schema.space import suggest
from raytune_llm.search.compress import Settings
from raytune_llm.search.compress_search import pareto, parse_pick, pick, settings_for, space, start

METHODS = ["int8", "prune-heads", "prune-magnitude", "distill"]


def test_the_start_points_are_compress_defaults_and_lie_in_the_space():
    s = Settings()
    points = start(METHODS, s, teacher_layers=6)
    assert [p["method"] for p in points] == METHODS
    assert points[3] == {"method": "distill", "student_layers": 3, "temperature": 2.0, "alpha": 0.5}
    search = SearchConfig.model_validate({"space": space(METHODS, 6), "points_to_evaluate": points})
    study = optuna.create_study(directions=["maximize", "minimize"])
    for p in points:
        study.enqueue_trial(p)
    for p in points:  # the enqueued points come back exactly, only their method's params active
        assert suggest(study.ask(), search.space) == p
    for _ in range(20):
        drawn = suggest(study.ask(), search.space)
        assert set(drawn) == set(next(p for p in points if p["method"] == drawn["method"]))
        if "student_layers" in drawn:
            assert 1 <= drawn["student_layers"] <= 5


def test_a_trials_params_become_its_settings():
    base = Settings()
    heads = settings_for({"method": "prune-heads", "ratio": 0.3, "recovery": False}, base)
    assert (heads.head_ratio, heads.magnitude_ratio, heads.recovery) == (0.3, 0.5, False)
    mag = settings_for({"method": "prune-magnitude", "ratio": 0.7, "recovery": True}, base)
    assert (mag.head_ratio, mag.magnitude_ratio) == (0.5, 0.7)
    student = settings_for({"method": "distill", "student_layers": 2, "temperature": 4.0, "alpha": 0.2}, base)
    assert (student.student_layers, student.temperature, student.alpha) == (2, 4.0, 0.2)
    assert settings_for({"method": "int8", "scheme": "weight-only"}, base).scheme == "weight-only"


def _t(tid, score, latency, healthy=True):
    return {"trial_id": tid, "healthy": healthy, "result": {"eval_accuracy": score, "latency_ms": latency}}


def test_the_front_holds_the_non_dominated_healthy_trials_only():
    trials = [_t("a", 0.90, 10), _t("b", 0.85, 5), _t("c", 0.84, 6), _t("d", 0.95, 1, healthy=False),
              _t("e", 0.80, 3), _t("f", 0.90, 12)]
    front = pareto(trials, "eval_accuracy", "max", "latency_ms")
    assert [t["trial_id"] for t in front] == ["e", "b", "a"]  # c: b beats it; f: a; d failed
    assert pareto(trials, "eval_accuracy", "min", "latency_ms")[0]["trial_id"] == "e"


def _row(name, score, size, latency=1.0):
    return {"variant": name, "eval": {"eval_accuracy": score}, "size_bytes": size, "latency_ms_median": latency}


def test_the_pick_is_the_smallest_or_fastest_within_the_tolerance_of_the_original():
    rows = [_row("original", 0.90, 100, 10), _row("int8", 0.895, 60, 8), _row("tiny", 0.85, 20, 2),
            _row("half", 0.891, 50, 9), _row("also-half", 0.899, 50, 7)]
    assert pick(rows, "eval_accuracy", "max", "smallest-within:0.01")["variant"] == "also-half"  # tie: better score
    assert pick(rows, "eval_accuracy", "max", "fastest-within:0.01")["variant"] == "also-half"
    assert pick(rows, "eval_accuracy", "max", "smallest-within:0.05")["variant"] == "tiny"
    assert pick(rows, "eval_accuracy", "max", "smallest-within:0") is None
    loss = [_row("original", 0.5, 100), _row("a", 0.55, 10), _row("b", 0.7, 5)]
    assert pick(loss, "eval_accuracy", "min", "smallest-within:0.1")["variant"] == "a"


@pytest.mark.parametrize("rule", ["smallest", "largest-within:0.01", "smallest-within:x", "fastest-within:-1"])
def test_a_bad_pick_rule_is_refused_with_the_form(rule):
    with pytest.raises(UserError, match="RULE-within:POINTS"):
        parse_pick(rule)


def test_search_flags_are_checked_before_any_work(tmp_path, capsys):
    assert main(["compress", str(tmp_path / "nothing"), "--out", str(tmp_path / "x"), "--trials", "0",
                 "--pick", "best"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--trials, --pick: only with --search" in err and "--trials 0: at least 1" in err and "RULE-within" in err
