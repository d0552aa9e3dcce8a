"""Searchers and schedulers: the registries, their settings, and what the searcher is told about ended trials,
asserted on Optuna's study itself."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from raytune_llm.config import validate_dict
from raytune_llm.core.errors import ConfigError
from raytune_llm.core.outcomes import searcher_verdict
from raytune_llm.schema import SearchConfig
from raytune_llm.search.tell import FAILED
from raytune_llm.searchers import Plan, searchers
from raytune_llm.searchers.grid import grid_size, param_values
from raytune_llm.searchers.tpe import startup_trials

SPACE = {
    "optimizer.lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
    "optimizer.weight_decay": {"type": "categorical", "choices": [0.0, 0.01]},
}


def _search(**overrides: Any) -> SearchConfig:
    return SearchConfig.model_validate({"metric": "eval_accuracy", "mode": "max", "space": SPACE, **overrides})


def _row(step: int, value: float, total: int = 8, **extra: Any) -> dict[str, Any]:
    return {"eval_accuracy": value, "step": step, "total_steps": total, "training_iteration": step // 2,
            "stop_reason": "", **extra}


def test_the_searcher_is_told_the_truth_about_each_ended_trial() -> None:
    from optuna.trial import TrialState

    from raytune_llm.search.tell import build_search

    search = build_search(_search(searcher={"name": "random", "seed": 3}), concurrent=1)
    ids = ["done", "asha", "guard", "plateau", "error", "silent"]
    for tid in ids:
        assert search.suggest(tid) is not None
    # Each report reaches Optuna as an intermediate value, as in a search.
    for tid in ("done", "asha", "guard", "plateau", "error"):
        search.on_trial_result(tid, _row(2, 0.6))
    search.on_trial_result("done", _row(8, 0.8))
    search.on_trial_complete("done", _row(8, 0.8))
    search.on_trial_complete("asha", _row(2, 0.6))  # ASHA stopped it after one round
    search.on_trial_complete("guard", _row(4, 0.0, stop_reason="chance_level", real_eval_accuracy=0.5))
    search.on_trial_complete("plateau", _row(6, 0.7, stop_reason="plateau"))
    search.on_trial_complete("error", _row(2, 0.6), error=True)
    search.on_trial_complete("silent", None)  # stopped before its first evaluation
    study = {t.number: t for t in search._ot_study.trials}
    by_id = {tid: study[search._ot_trials[tid].number] for tid in ids}
    assert by_id["done"].state == TrialState.COMPLETE and by_id["done"].value == 0.8
    assert by_id["asha"].state == TrialState.PRUNED  # TPE ranks it by how far it got, not as finished
    assert by_id["asha"].intermediate_values == {1: 0.6}
    assert by_id["guard"].state == TrialState.COMPLETE and by_id["guard"].value == 0.0  # the worst, not FAIL ...
    assert by_id["guard"].constraints == {FAILED: 1.0}  # ... and infeasible: below every healthy trial
    assert all(by_id[t].constraints == {FAILED: 0.0} for t in ("done", "asha", "plateau"))
    assert by_id["plateau"].state == TrialState.COMPLETE and by_id["plateau"].value == 0.7
    assert by_id["error"].state == TrialState.FAIL
    assert by_id["silent"].state == TrialState.FAIL


def test_verdicts_follow_the_outcome_rules() -> None:
    assert searcher_verdict(False, _row(8, 0.8), "eval_accuracy") == "complete"
    assert searcher_verdict(False, _row(2, 0.6), "eval_accuracy") == "pruned"
    assert searcher_verdict(False, _row(4, float("nan")), "eval_accuracy") == "fail"
    assert searcher_verdict(False, _row(4, 1e9, stop_reason="non_finite"), "eval_accuracy") == "infeasible"
    assert searcher_verdict(False, _row(6, 0.7, stop_reason="plateau"), "eval_accuracy") == "complete"
    assert searcher_verdict(True, _row(8, 0.8), "eval_accuracy") == "fail"


def test_a_failed_trial_is_never_one_of_tpes_good_examples() -> None:
    """Optuna's TPE fills its "good" set with COMPLETE trials before any PRUNED one, whatever their values; a guard
    failure told COMPLETE with its worst value would be TPE's only good example while ASHA prunes the healthy trials
    (gamma = 1 for 6-10 trials). Marked infeasible, it ranks below every healthy trial."""
    from optuna.samplers._tpe.sampler import _split_trials

    from raytune_llm.search.tell import build_search

    search = build_search(_search(), concurrent=1)
    for i in range(6):
        search.suggest(str(i))
    search.on_trial_complete("0", _row(4, 0.0, stop_reason="loss_spike", real_eval_accuracy=0.4))
    for i in range(1, 6):  # healthy, stopped by ASHA at different points
        search.on_trial_result(str(i), _row(2, 0.5 + i / 100))
        search.on_trial_complete(str(i), _row(2, 0.5 + i / 100))
    study = search._ot_study
    failed = study.trials[search._ot_trials["0"].number]
    for n_below in (1, 3, 5):
        below, _ = _split_trials(study, study.trials, n_below)
        assert failed not in below and len(below) == n_below
    below, _ = _split_trials(study, study.trials, 1)
    assert below[0].intermediate_values == {1: 0.55}  # the healthy trial that got furthest, best


def test_a_failed_trial_is_never_on_the_studys_pareto_front() -> None:
    from raytune_llm.search.tell import build_search

    cfg = _search(objectives=[{"metric": "trainable_params", "mode": "min"}], searcher={"name": "random"})
    search = build_search(cfg, concurrent=1)
    for tid in ("healthy", "failed"):
        search.suggest(tid)
    search.on_trial_complete("healthy", _row(8, 0.8, trainable_params=1000))
    # Its worst accuracy, but the fewest weights: without the constraint, on the front.
    search.on_trial_complete("failed", _row(4, 0.0, stop_reason="chance_level", trainable_params=10))
    assert [t.number for t in search._ot_study.best_trials] == [search._ot_trials["healthy"].number]


def test_points_to_evaluate_are_tried_first_and_after_the_default_recipe_with_a_portfolio_start() -> None:
    from raytune_llm.search.tell import build_search

    point = {"optimizer.lr": 2e-5, "optimizer.weight_decay": 0.01}
    search = build_search(_search(points_to_evaluate=[point], start="random"), concurrent=1)
    first = search.suggest("a")
    assert first["optimizer.lr"] == 2e-5 and first["optimizer.weight_decay"] == 0.01
    assert first["recipe"] == "points_to_evaluate[0]"
    assert search.suggest("b") != first
    portfolio = build_search(_search(points_to_evaluate=[point]), concurrent=1)
    assert portfolio.suggest("a")["recipe"] == "default"
    second = portfolio.suggest("b")
    assert second["optimizer.lr"] == 2e-5 and second["recipe"] == "points_to_evaluate[0]"


def test_tpe_is_sized_to_the_budget_and_lies_only_under_concurrency() -> None:
    assert [startup_trials(n) for n in (6, 8, 12, 30)] == [4, 4, 4, 10]  # a third, at least 4
    tpe = _search().searcher
    alone, together = tpe.sampler(Plan(12, 1, {})), tpe.sampler(Plan(12, 3, {}))
    assert alone._n_startup_trials == 4 and not alone._constant_liar and together._constant_liar
    assert alone._multivariate and alone._group
    assert _search(searcher={"n_startup_trials": 2}).searcher.sampler(Plan(12, 1, {}))._n_startup_trials == 2
    assert _search(searcher={"name": "optuna"}).searcher.name == "optuna"  # the old name still means TPE


def test_grid_tries_every_combination_once() -> None:
    import optuna

    from raytune_llm.schema.space import suggest

    cfg = _search(searcher={"name": "grid"}, num_trials=6,
                  space={"optimizer.lr": {"type": "float", "low": 1e-5, "high": 3e-5, "step": 1e-5},
                         "optimizer.weight_decay": {"type": "categorical", "choices": [0.0, 0.01]}})
    assert grid_size(cfg.space) == 6 and param_values(cfg.space["optimizer.weight_decay"]) == [0.0, 0.01]
    study = optuna.create_study(sampler=cfg.searcher.sampler(Plan(6, 1, cfg.space)))
    seen = []
    for _ in range(6):
        trial = study.ask()
        params = suggest(trial, cfg.space)
        seen.append((round(params["optimizer.lr"], 8), params["optimizer.weight_decay"]))
        study.tell(trial, 0.5)
    assert sorted(seen) == sorted(itertools.product([1e-5, 2e-5, 3e-5], [0.0, 0.01]))


def test_grid_varies_a_conditional_param_only_where_it_is_sampled() -> None:
    """full x 2 lrs, and lora x 2 lrs x 2 ranks: 6 distinct trials, not the 8 of the full product (where full
    fine-tuning's points would differ only in a LoRA rank it never reads)."""
    import optuna

    from raytune_llm.schema.space import suggest

    space = {"peft.method": {"type": "categorical", "choices": ["full", "lora"]},
             "optimizer.lr": {"type": "categorical", "choices": [1e-5, 1e-4]},
             "peft.lora.r": {"type": "categorical", "choices": [4, 16], "when": {"peft.method": "lora"}}}
    cfg = _search(searcher={"name": "grid"}, num_trials=6, space=space)
    assert grid_size(cfg.space) == 6
    study = optuna.create_study(sampler=cfg.searcher.sampler(Plan(6, 1, cfg.space)))
    seen = []
    for _ in range(6):
        trial = study.ask()
        seen.append(tuple(sorted(suggest(trial, cfg.space).items())))
        study.tell(trial, 0.5)
    assert len(set(seen)) == 6
    with pytest.raises(ConfigError, match=r"search.num_trials: is 8, but the grid has 6 points"):
        validate_dict({"model": {"name": "m"}, "data": {"source": "d"}, "search": {
            "searcher": {"name": "grid"}, "num_trials": 8, "space": space}})


@pytest.mark.parametrize("name", searchers.names())
def test_every_searcher_proposes_within_the_space(name: str) -> None:
    import optuna

    from raytune_llm.schema.space import suggest

    space = SPACE if name != "grid" else {"optimizer.weight_decay": SPACE["optimizer.weight_decay"]}
    cfg = _search(searcher={"name": name}, num_trials=2, space=space)
    study = optuna.create_study(direction="maximize", sampler=cfg.searcher.sampler(Plan(2, 1, cfg.space)))
    for i in range(2):
        trial = study.ask()
        params = suggest(trial, cfg.space)
        assert params["optimizer.weight_decay"] in (0.0, 0.01)
        study.tell(trial, float(i))


@pytest.mark.parametrize("scheduler", [{"name": "asha"}, {"name": "hyperband"}, {"name": "median"},
                                       {"name": "fifo"}, {}])
def test_every_scheduler_builds_the_ray_scheduler(scheduler: dict[str, Any]) -> None:
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, MedianStoppingRule

    from raytune_llm.schedulers.yardstick import SparingASHA, SparingMedianStoppingRule

    built = _search(scheduler=scheduler).scheduler.build(max_t=8)
    # Ray's own schedulers, made to spare the default recipe's trial (schedulers/yardstick.py)
    expected = {"asha": SparingASHA, "hyperband": SparingASHA, "median": SparingMedianStoppingRule,
                "fifo": FIFOScheduler}[scheduler.get("name", "asha")]
    assert type(built) is expected
    assert isinstance(built, (AsyncHyperBandScheduler, MedianStoppingRule, FIFOScheduler))
    if scheduler.get("name") == "hyperband":
        assert len(built._brackets) == 3


BY_METHOD = {
    "peft.method": {"type": "categorical", "choices": ["full", "lora"]},
    "optimizer.lr": {"type": "float", "low": 1e-5, "high": 3e-4, "log": True,
                     "by": {"peft.method": {"lora": {"low": 1e-4, "high": 3e-3}}}},
}


def test_a_range_can_depend_on_the_peft_method() -> None:
    """LoRA wants roughly 10x full fine-tuning's learning rate: one space gives each method its own range, and
    the searcher models each range as a dimension of its own."""
    from raytune_llm.search.tell import build_search

    cfg = _search(space=BY_METHOD, searcher={"name": "random", "seed": 0}, num_trials=40, start="random",
                  points_to_evaluate=[{"peft.method": "lora", "optimizer.lr": 2e-3}])
    search = build_search(cfg, concurrent=1)
    proposals = [search.suggest(str(i)) for i in range(40)]
    # the point, mapped to its range
    assert proposals[0] == {"peft.method": "lora", "optimizer.lr": 2e-3, "recipe": "points_to_evaluate[0]"}
    for p in proposals:
        low, high = (1e-4, 3e-3) if p["peft.method"] == "lora" else (1e-5, 3e-4)
        assert low <= p["optimizer.lr"] <= high, p
    names = {name for t in search._ot_study.trials for name in t.params}
    assert names == {"peft.method", "optimizer.lr", "optimizer.lr[peft.method=lora]"}
    assert {p["peft.method"] for p in proposals} == {"full", "lora"}


def test_by_ranges_are_checked_with_their_yaml_paths() -> None:
    from raytune_llm.config.loading import validate_dict
    from raytune_llm.core.errors import ConfigError

    space = {**BY_METHOD, "optimizer.lr": {**BY_METHOD["optimizer.lr"], "by": {"peft.method": {
        "ia3": {"low": 1e-4, "high": 1e-3}, "lora": {"low": 0.0, "high": 1e-3}}}}}
    with pytest.raises(ConfigError) as caught:
        validate_dict({"model": {"name": "m"}, "data": {"source": "d"}, "search": {
            "space": space, "points_to_evaluate": [{"peft.method": "lora", "optimizer.lr": 5e-3}]}})
    text = str(caught.value)
    assert "search.space.optimizer.lr.by.peft.method.ia3: 'ia3' is not one of its choices" in text
    assert "search.space.optimizer.lr.by.peft.method.lora: log: true needs low > 0" in text
    assert "search.points_to_evaluate[0].optimizer.lr: 0.005 is outside its range [0.0, 0.001]" in text


# ---------------------------------------------------------------- several objectives


def test_a_multi_objective_study_gets_every_objective_and_the_truth() -> None:
    from optuna.trial import TrialState

    from raytune_llm.search.tell import build_search

    cfg = _search(objectives=[{"metric": "trainable_params", "mode": "min"}], searcher={"name": "random"})
    search = build_search(cfg, concurrent=1)
    for tid in ("done", "asha", "no_cost"):
        search.suggest(tid)
    search.on_trial_complete("done", _row(8, 0.8, trainable_params=1000))
    search.on_trial_complete("asha", _row(2, 0.6, trainable_params=50))
    search.on_trial_complete("no_cost", _row(8, 0.8))  # the further objective never came: not a result
    study = search._ot_study
    assert study.directions[1].name == "MINIMIZE"
    by_id = {tid: study.trials[search._ot_trials[tid].number] for tid in ("done", "asha", "no_cost")}
    assert by_id["done"].state == TrialState.COMPLETE and by_id["done"].values == [0.8, 1000]
    assert by_id["asha"].state == TrialState.PRUNED
    assert by_id["no_cost"].state == TrialState.FAIL


def test_a_failed_trial_that_never_measured_its_further_objective_is_still_told_infeasible() -> None:
    """A compression trial the guard stopped while its variant trained has no latency yet (NaN): it is told with
    every objective at its worst and the violated constraint, never dropped as FAIL (TPE would ignore it)."""
    from optuna.trial import TrialState

    from raytune_llm.core.outcomes import worst_value
    from raytune_llm.search.tell import build_search

    cfg = _search(objectives=[{"metric": "latency_ms", "mode": "min"}], searcher={"name": "random"})
    search = build_search(cfg, concurrent=1)
    search.suggest("diverged")
    search.on_trial_complete("diverged", _row(4, 0.7, stop_reason="non_finite", latency_ms=float("nan")))
    told = search._ot_study.trials[search._ot_trials["diverged"].number]
    assert told.state == TrialState.COMPLETE and told.constraints == {FAILED: 1.0}
    assert told.values == [worst_value("eval_accuracy", "max"), worst_value("latency_ms", "min")]


def test_the_pareto_front_and_exports_stated_pick() -> None:
    from raytune_llm.results.choice import choose_for, pareto_front
    from raytune_llm.results.trials import TrialRecord

    def trial(tid: str, acc: float, params: int, **row: Any) -> TrialRecord:
        return TrialRecord(tid, {}, "TERMINATED", rows=[{"eval_accuracy": acc, "trainable_params": params,
                                                         "step": 8, "total_steps": 8, "stop_reason": "", **row}])

    full, lora_big, lora_small, worse = (trial("full", 0.91, 22_000_000), trial("lora16", 0.905, 300_000),
                                         trial("lora4", 0.88, 80_000), trial("worse", 0.87, 300_000))
    failed = trial("failed", 0.99, 10, stop_reason="loss_spike")
    trials = [full, lora_big, lora_small, worse, failed]
    cfg = _search(objectives=[{"metric": "trainable_params", "mode": "min"}])
    front = pareto_front(trials, cfg)
    assert [t.trial_id for t, _ in front] == ["full", "lora16", "lora4"]  # "worse" is dominated, "failed" failed
    assert choose_for(trials, cfg).trial.trial_id == "full"  # tolerance 0: the best metric, as with one objective
    tolerant = _search(objectives=[{"metric": "trainable_params", "mode": "min"}], pareto_tolerance=0.01)
    assert choose_for(trials, tolerant).trial.trial_id == "lora16"  # within 0.01 of 0.91, 70x fewer weights
    assert choose_for(trials, _search(objectives=[{"metric": "trainable_params", "mode": "min"}],
                                      pareto_tolerance=0.05)).trial.trial_id == "lora4"
    no_cost = [TrialRecord("a", {}, "TERMINATED", rows=[{"eval_accuracy": 0.8, "step": 8, "total_steps": 8}])]
    assert choose_for(no_cost, tolerant).trial.trial_id == "a"  # no objective reported: the metric decides alone


def test_objectives_are_checked_against_what_the_task_reports() -> None:
    from raytune_llm.config.loading import validate_dict
    from raytune_llm.core.errors import ConfigError

    base = {"model": {"name": "m"}, "data": {"source": "d"}}
    ok = validate_dict({**base, "search": {"objectives": [{"metric": "trainable_params", "mode": "min"}]}})
    assert ok.search.objectives[0].metric == "trainable_params"
    for search, message in [
        ({"objectives": [{"metric": "eval_bleu", "mode": "max"}]}, "'eval_bleu' is not reported by task"),
        ({"objectives": [{"metric": "eval_accuracy", "mode": "max"}]}, "'eval_accuracy' is listed twice"),
        ({"pareto_tolerance": 0.01}, "search.pareto_tolerance: has no effect without search.objectives"),
    ]:
        with pytest.raises(ConfigError, match=message):
            validate_dict({**base, "search": search})


def test_a_run_that_ended_at_chance_is_told_as_a_failure_with_the_worst_value() -> None:
    """It reports its real value (a constant prediction's accuracy); the searcher is told the worst, infeasible."""
    from raytune_llm.search.tell import build_search

    search = build_search(_search(), concurrent=1)
    search.suggest("stuck")
    search.on_trial_complete("stuck", _row(8, 0.9, at_chance=True))
    told = search._ot_study.trials[search._ot_trials["stuck"].number]
    assert told.value == 0.0 and told.constraints == {FAILED: 1.0}
