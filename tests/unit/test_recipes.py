"""The recipe library and the portfolio start: every entry is a valid setting, the greedy rule, recipes clipped into
a user's space, the start's order, the yardstick that no scheduler stops, and the pick's gain over it."""

from __future__ import annotations

from typing import Any

import pytest

from raytune_llm.config import validate_dict
from raytune_llm.core.errors import ConfigError
from raytune_llm.recipes import FAMILIES, Recipe, clip_into, family_of, greedy_portfolio, library, start_points
from raytune_llm.results.choice import choose_for, gain_over_default
from raytune_llm.results.trials import TrialRecord, _params
from raytune_llm.schema import SearchConfig, TrainConfig
from raytune_llm.schema.space import apply_params
from raytune_llm.schema.train import PeftMethod

SPACE = {
    "peft.method": {"type": "categorical", "choices": ["full", "lora"]},
    "optimizer.lr": {"type": "float", "low": 3e-5, "high": 5e-4, "log": True,
                     "by": {"peft.method": {"lora": {"low": 1e-3, "high": 1e-2}}}},
    "schedule.warmup_ratio": {"type": "float", "low": 0.0, "high": 0.05},
    "peft.lora.r": {"type": "int", "low": 4, "high": 32, "log": True, "when": {"peft.method": "lora"}},
    "peft.lora.alpha": {"type": "categorical", "choices": [32, 64], "when": {"peft.method": "lora"}},
}


def _search(**overrides: Any) -> SearchConfig:
    return SearchConfig.model_validate({"metric": "eval_accuracy", "mode": "max", "space": SPACE, **overrides})


def test_every_library_entry_is_a_valid_setting_and_each_default_sits_inside_its_range() -> None:
    lib = library()
    for family in FAMILIES:
        for method in PeftMethod:
            recipe = lib.default(method, family)
            train = apply_params(TrainConfig(), {"peft.method": method.value, **recipe.params})
            assert train.peft.method == method and recipe.source
            lr = lib.method_ranges(method, family)["optimizer.lr"]
            assert lr.low <= recipe.params["optimizer.lr"] <= lr.high, (family, method)
        for recipe in lib.portfolio[family]:
            assert recipe.learnt_on and recipe.name != "default"
    with pytest.raises(ValueError, match="lr"):
        Recipe(name="bad", method="full", params={"optimizer.lr": -1.0})


def test_the_model_family_comes_from_the_task_the_model_type_or_the_architecture() -> None:
    assert family_of("sequence_classification", "llama") == "decoder"
    assert family_of("sequence_classification", "bert") == "encoder"
    assert family_of("causal_lm", None) == "decoder" and family_of("regression", None) == "encoder"
    assert family_of("causal_lm", "qwen3_moe") == "decoder"  # a causal LM task whatever the model_type
    assert family_of("sequence_classification", "qwen3_moe", ["Qwen3MoeForCausalLM"]) == "decoder"


def test_the_greedy_portfolio_adds_what_covers_the_tasks_the_chosen_ones_do_worst_on() -> None:
    scores = {
        "a": {"t1": 1.0, "t2": 1.0, "t3": 0.0},  # best on two tasks, fails the third
        "b": {"t1": 0.9, "t2": 0.9, "t3": 0.9},  # good everywhere: the best single recipe
        "c": {"t1": 0.0, "t2": 0.0, "t3": 1.0},
        "d": {"t1": 0.5, "t2": 0.5, "t3": 0.5},  # dominated: never adds anything
    }
    assert greedy_portfolio(scores, 1) == ["b"]
    assert greedy_portfolio(scores, 4) == ["b", "a", "c"]  # d adds nothing, so it is not added
    assert greedy_portfolio({"x": {"t": 0.5}, "y": {"t": 0.5}}, 1) == ["x"]  # ties: the first listed


def test_a_recipe_is_clipped_into_the_users_space() -> None:
    train = TrainConfig.model_validate({"peft": {"lora": {"alpha": 64}}, "grad_clip": 0.5})
    full = Recipe(name="f", method="full", params={"optimizer.lr": 2e-3, "schedule.warmup_ratio": 0.1,
                                                   "grad_clip": 1.0, "peft.lora.r": 8})
    point = clip_into(full, _search().space, train)
    # lr and warmup moved to the nearest bound; grad_clip is not searched: left alone (the user's 0.5 stands);
    # LoRA's r is inactive for full fine-tuning
    assert point == {"peft.method": "full", "optimizer.lr": 5e-4, "schedule.warmup_ratio": 0.05}
    lora = Recipe(name="l", method="lora", params={"optimizer.lr": 2e-4, "peft.lora.r": 100, "peft.lora.alpha": 16})
    point = clip_into(lora, _search().space, train)
    # LoRA's own `by:` range; r to its high end; alpha 16 is not a choice: the nearest one (32)
    assert point == {"peft.method": "lora", "optimizer.lr": 1e-3, "schedule.warmup_ratio": 0.0, "peft.lora.r": 32,
                     "peft.lora.alpha": 32}
    # Categorical learning rates as YAML reads them (strings): the nearest in log space; a step grid: the grid
    # point at or below the range's top; a non-numeric value not listed: the user's train value
    space = _search(space={
        "optimizer.lr": {"type": "categorical", "choices": ["1e-3", "3e-3"]},
        "peft.lora.r": {"type": "int", "low": 2, "high": 8, "step": 4},
        "peft.lora.targets": {"type": "categorical", "choices": ["attention", "all-linear"]},
    }).space
    targets = TrainConfig.model_validate({"peft": {"method": "lora", "lora": {"targets": "all-linear"}}})
    point = clip_into(Recipe(name="l", method="lora", params={
        "optimizer.lr": 2e-3, "peft.lora.r": 8, "peft.lora.targets": "qv"}), space, targets)
    assert point == {"optimizer.lr": "3e-3", "peft.lora.r": 6, "peft.lora.targets": "all-linear"}
    no_method = {k: v for k, v in SPACE.items() if k != "optimizer.lr"}
    assert clip_into(Recipe(name="p", method="prompt_tuning"), _search(space=no_method).space, train) is None


def test_a_portfolio_start_is_the_default_recipe_then_the_users_points_then_the_portfolio() -> None:
    train = TrainConfig()
    mine = {"peft.method": "full", "optimizer.lr": 4e-5}
    start = start_points(_search(points_to_evaluate=[mine], portfolio_size=3), train)
    names = [name for name, _ in start]
    assert names[:2] == ["default", "points_to_evaluate[0]"] and len(names) == 4  # 3 recipes + the user's point
    assert start[0][1]["peft.method"] == "full"  # the first method's default recipe
    assert start[0][1]["optimizer.lr"] == library().default("full").params["optimizer.lr"]
    learnt = [Recipe(name="near-default", method="full",
                     params={"optimizer.lr": 1.05e-4, "schedule.warmup_ratio": 0.1}),
              Recipe(name="lora-high", method="lora", params={"optimizer.lr": 5e-3})]
    start = start_points(_search(portfolio_size=3), train, portfolio=learnt)
    # a learnt recipe that runs the default recipe again is skipped; the other methods' defaults fill up
    assert [name for name, _ in start] == ["default", "lora-high", "default-lora"]
    assert start_points(_search(portfolio_size=1), train) == [start[0]]
    assert start_points(_search(start="random", points_to_evaluate=[mine]), train) == [
        ("points_to_evaluate[0]", mine)]


def test_grid_and_pbt_start_without_recipes_and_refuse_an_explicit_portfolio() -> None:
    from raytune_llm.recipes import effective_start

    grid = _search(searcher={"name": "grid"}, space={"optimizer.weight_decay": {"type": "categorical",
                                                                                "choices": [0.0, 0.1]}})
    assert effective_start(grid) == "random" and effective_start(_search()) == "portfolio"
    assert effective_start(_search(space={})) == "random"
    base = {"model": {"name": "m"}, "data": {"source": "d"}}
    with pytest.raises(ConfigError) as err:
        validate_dict({**base, "search": {"searcher": {"name": "grid"}, "start": "portfolio", "num_trials": 2,
                                          "space": {"optimizer.weight_decay": {"type": "categorical",
                                                                               "choices": [0.0, 0.1]}}}})
    assert "search.start" in str(err.value)
    with pytest.raises(ConfigError) as err:
        validate_dict({**base, "search": {"scheduler": {"name": "pbt"}, "start": "portfolio",
                                          "space": {"optimizer.lr": {"type": "float", "low": 1e-5, "high": 1e-3}}}})
    assert "search.start" in str(err.value)


def test_the_searcher_runs_the_start_first_and_its_random_draws_shrink_by_as_many() -> None:
    from raytune_llm.search.tell import build_search
    from raytune_llm.searchers.tpe import startup_trials

    search = build_search(_search(num_trials=12, portfolio_size=3), concurrent=1, train=TrainConfig())
    sampler = search._ot_study.sampler
    random_draws = 0
    draw = sampler._random_sampler.sample_independent

    def counted(*args: Any) -> Any:
        nonlocal random_draws
        random_draws += 1
        return draw(*args)

    sampler._random_sampler.sample_independent = counted
    configs = [search.suggest(str(i)) for i in range(3)]
    assert [c["recipe"] for c in configs] == ["default", "lora-lr5.6e-3-w0.1-clipnone", "full-lr1.5e-4-w0-clipnone"]
    assert configs[0]["peft.method"] == "full" and random_draws == 0  # enqueued: nothing drawn
    for i, _ in enumerate(configs):
        search.on_trial_complete(str(i), {"eval_accuracy": 0.5 + i / 10, "training_iteration": 1})
    # The recipes are trials of the same study: of TPE's start-up trials (a third of 12: 4) one is left to draw
    assert sampler._n_startup_trials == startup_trials(12) == 4
    assert "recipe" not in search.suggest("3") and random_draws > 0
    search.on_trial_complete("3", {"eval_accuracy": 0.4, "training_iteration": 1})
    before = random_draws
    search.suggest("4")
    assert random_draws == before  # the fifth trial is TPE's model, not a random draw
    assert [t.user_attrs.get("recipe") for t in search._ot_study.trials][:3] == [c["recipe"] for c in configs]
    none = build_search(_search(start="none"), concurrent=1)
    assert none._ot_study.sampler._n_startup_trials == 1 and "recipe" not in none.suggest("a")
    # the recipe's name is not a setting
    assert apply_params(TrainConfig(), configs[0]).optimizer.lr == configs[0]["optimizer.lr"]
    assert _params({"config": configs[0], "evaluated_params": configs[0]}) == {
        k: v for k, v in configs[0].items() if k != "recipe"}


@pytest.mark.parametrize("name", ["asha", "median"])
def test_no_scheduler_stops_the_default_recipe(name: str) -> None:
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    scheduler = _search(scheduler={"name": name, "grace_period": 1}).scheduler.build(max_t=8)
    scheduler.set_search_properties("eval_accuracy", "max")
    good = [Trial("__fake", config={}, stub=True) for _ in range(3)]
    bad = Trial("__fake", config={}, stub=True)
    yardstick = Trial("__fake", config={"recipe": "default"}, stub=True)
    for t in [*good, bad, yardstick]:
        scheduler.on_trial_add(None, t)
    decisions: dict[str, list[str]] = {bad.trial_id: [], yardstick.trial_id: []}
    for it in range(1, 5):
        for t in good:
            scheduler.on_trial_result(None, t, {"training_iteration": it, "eval_accuracy": 0.9, "time_total_s": it})
        for t in (bad, yardstick):
            if TrialScheduler.STOP not in decisions[t.trial_id]:  # a stopped trial reports no more
                decisions[t.trial_id].append(scheduler.on_trial_result(
                    None, t, {"training_iteration": it, "eval_accuracy": 0.1, "time_total_s": it}))
    assert TrialScheduler.STOP in decisions[bad.trial_id]  # the same results stop any other trial
    assert decisions[yardstick.trial_id] == [TrialScheduler.CONTINUE] * 4


def _trial(tid: str, value: float, recipe: str | None = None, stop: str = "") -> TrialRecord:
    return TrialRecord(tid, {}, "TERMINATED", [{"eval_accuracy": value, "step": 4, "total_steps": 4,
                                                 "stop_reason": stop}], recipe=recipe)


def test_the_pick_is_reported_against_the_default_recipe_and_is_it_when_nothing_beats_it() -> None:
    search = _search()
    trials = [_trial("t1", 0.80, "default"), _trial("t2", 0.83, "lora-lr5.6e-3"), _trial("t3", 0.70)]
    gain = gain_over_default(trials, search, choose_for(trials, search))
    assert gain is not None and gain.gain == pytest.approx(0.03)
    assert gain.line().startswith("+0.03 eval_accuracy over the default recipe (trial t1: 0.8 -> 0.83)")
    assert gain.as_dict()["default_trial"] == "t1"
    worse = [_trial("t1", 0.80, "default"), _trial("t2", 0.80), _trial("t3", 0.75)]
    choice = choose_for(worse, search)
    assert choice.trial.trial_id == "t1"  # a tie goes to the earlier trial: the default recipe
    assert "no trial beat it" in gain_over_default(worse, search, choice).line()
    failed = [_trial("t1", 0.5, "default", stop="loss_spike"), _trial("t2", 0.8)]
    line = gain_over_default(failed, search, choose_for(failed, search)).line()
    assert "the default recipe (trial t1)" in line and "nothing to compare" in line
    assert gain_over_default([_trial("t2", 0.8)], search, choose_for([_trial("t2", 0.8)], search)) is None
