"""Metrics by hand, worst finite values, and the step detectors on synthetic sequences."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from raytune_llm.core.outcomes import worst_value
from raytune_llm.schema import StabilityConfig
from raytune_llm.tasks.metrics import classification_metrics
from raytune_llm.training.stability import StabilityGuard


def test_accuracy_and_macro_f1_match_hand_computation() -> None:
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 2, 0]
    m = classification_metrics(preds, labels, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    # F1 per class: 0 -> 2*1/(2+1+1)=0.5, 1 -> 2*2/(4+1+0)=0.8, 2 -> 2*1/(2+0+1)=2/3
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_majority_predictor_has_low_macro_f1() -> None:
    m = classification_metrics([0] * 10, [0] * 8 + [1] * 2, ["no", "yes"])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx((2 * 8 / (16 + 2) + 0) / 2)
    assert m["mcc"] == 0.0 and m["f1"] == 0.0  # chance: whatever the imbalance


def test_worst_value_is_finite_and_on_the_bad_side() -> None:
    assert worst_value("eval_accuracy", "max") == 0.0
    assert worst_value("eval_macro_f1", "min") == 1.0
    assert math.isfinite(worst_value("eval_loss", "min")) and worst_value("eval_loss", "min") > 1e6
    assert worst_value("eval_custom", "max") < -1e6
    # Every task's bounded objective has a natural worst value (a -1e9 would swamp TPE's density estimates).
    assert worst_value("eval_f1", "max") == 0.0 and worst_value("eval_exact_match", "max") == 0.0
    assert worst_value("eval_pearson", "max") == -1.0 and worst_value("eval_spearman", "min") == 1.0
    assert worst_value("eval_perplexity", "min") > 1e6


CHANCE_LOSS = 0.61  # the label entropy of a 70/30 binary task


def guard(**overrides: object) -> StabilityGuard:
    cfg = StabilityConfig.model_validate(overrides)
    return StabilityGuard(cfg, warmup_steps=5, total_steps=100, baseline=0.0, mode="max", chance_metric="eval_mcc",
                          chance_loss=CHANCE_LOSS)


def evals(g: StabilityGuard, curve: list[tuple[int, float, float]]) -> list[str]:
    """Feed (step, mcc, eval loss) evaluations (train loss = eval loss); the verdict reason of each."""
    return [g.check_eval(s, {"eval_mcc": m, "eval_loss": loss, "train_loss": loss}, m).reason for s, m, loss in curve]


@pytest.mark.parametrize(("loss", "grad"), [(float("nan"), 1.0), (1.0, float("inf")), (float("-inf"), 2.0)])
def test_non_finite_step_stops_at_once(loss: float, grad: float) -> None:
    assert guard().check_step(0, loss, grad).reason == "non_finite"


def test_healthy_training_is_never_stopped() -> None:
    g = guard()
    # Noisy but decreasing loss, gradient norms that wander by 3x: nothing fires.
    for step in range(100):
        loss = 0.7 * math.exp(-step / 40) + 0.05 * math.sin(step)
        assert not g.check_step(step, loss, 1.0 + 2.0 * abs(math.sin(step / 3))), step


def test_loss_spike_fires_after_warmup_only() -> None:
    g = guard(loss_spike={"factor": 2.0, "smoothing": 0.5})
    for step in range(12):  # min_steps=10 and warmup=5: no verdict before step 10
        assert not g.check_step(step, 0.3 if step < 6 else 5.0, 1.0) or step >= 10
    g = guard(loss_spike={"factor": 2.0, "smoothing": 0.5})
    reasons = [g.check_step(s, 0.2 if s < 20 else 3.0, 1.0).reason for s in range(30)]
    assert reasons.index("loss_spike") in (20, 21, 22)  # within a few steps of the blow-up
    assert reasons[:20] == [""] * 20


def test_grad_explosion_needs_a_sustained_rise_over_the_running_median() -> None:
    g = guard(grad_explosion={"factor": 10.0, "window": 20, "patience": 3})
    one_spike = [g.check_step(s, 0.5, 50.0 if s == 30 else 1.0).reason for s in range(40)]
    assert one_spike == [""] * 40  # a single 50x spike (seen in healthy runs) is tolerated
    reasons = [g.check_step(s, 0.5, 1.0 if s < 50 else 50.0 * (s - 48)).reason for s in range(40, 60)]
    assert reasons.index("grad_explosion") == 12  # steps 50, 51, 52 above 10x the median: stop at the third


def test_chance_level_stops_a_flat_run_at_chance_once_it_has_a_trend_to_read() -> None:
    flat = [(s, 0.0, 0.62) for s in (10, 20, 30, 40)]
    # Not before 25%; at 40% there are 4 evaluations (patience 3 + 1), none fell, none below the constant
    # prediction's loss: stop.
    assert evals(guard(), flat) == ["", "", "", "chance_level"]
    verdict = guard().check_eval(30, {"eval_mcc": 0.0, "eval_loss": 0.62, "train_loss": 0.62}, 0.0)
    assert not verdict  # a first evaluation past the mark has no trend yet: "not yet", never "never"


def test_chance_level_waits_while_the_loss_falls_or_is_below_the_constant_prediction() -> None:
    # The slow starter of the acceptability task: at the majority class (MCC 0) through a third of its budget
    # while its loss falls, then it learns. It must never be stopped.
    slow = [(10, 0.0, 0.69), (20, 0.0, 0.66), (30, 0.0, 0.63), (40, 0.0, 0.62), (50, 0.0, 0.60), (60, 0.2, 0.55)]
    assert evals(guard(), slow) == [""] * 6
    # Below the constant prediction's loss: its probabilities carry information though its argmax does not.
    informed = [(s, 0.0, 0.58) for s in (10, 20, 30, 40, 50)]
    assert evals(guard(), informed) == [""] * 5
    # A fall that stalls at chance: stopped once the last three evaluations no longer improve.
    stalls = [(10, 0.0, 0.69), (20, 0.0, 0.64), (30, 0.0, 0.62), (40, 0.0, 0.62), (50, 0.0, 0.62), (60, 0.0, 0.62)]
    assert evals(guard(), stalls) == ["", "", "", "", "", "chance_level"]


def test_a_trial_that_learnt_is_stopped_only_if_it_collapses() -> None:
    # Clearly above chance once (even before the check starts), then back at the majority class while its loss
    # stays below the constant prediction's (a bouncy high-lr run that recovers): never stopped.
    bouncy = [(10, 0.3, 0.5), (20, 0.0, 0.58), (30, 0.0, 0.6), (40, 0.0, 0.59), (50, 0.0, 0.6), (60, 0.0, 0.58)]
    assert evals(guard(), bouncy) == [""] * 6
    # Back at chance with a loss no better than a constant prediction's, 3 evaluations in a row: collapsed.
    collapse = [(10, 0.3, 0.5), (20, 0.0, 0.7), (30, 0.0, 0.66), (40, 0.0, 0.65)]
    assert evals(guard(), collapse) == ["", "", "", "chance_level"]
    # "Above chance" by noise is not learning: on 400 eval rows MCC must clear 2/sqrt(400) = 0.1 to count.
    g = StabilityGuard(StabilityConfig(), warmup_steps=5, total_steps=100, baseline=0.0, mode="max",
                       chance_metric="eval_mcc", chance_loss=CHANCE_LOSS, eval_rows=400)
    noisy = [(10, 0.07, 0.62), (20, 0.0, 0.62), (30, 0.0, 0.62), (40, 0.0, 0.62)]
    assert evals(g, noisy) == ["", "", "", "chance_level"]


def test_a_trial_that_left_chance_and_sits_back_at_it_is_judged_like_any_other() -> None:
    """Once above chance, then at chance for good with an eval loss a hair (0.3%) below the constant prediction's:
    stopped once it has been back at chance for `patience` evaluations (it used to run to its end: "learnt" stuck)."""
    hair = CHANCE_LOSS * 0.997
    sits = [(10, 0.3, 0.5), *((s, 0.0, hair) for s in range(20, 100, 10))]
    assert evals(guard(), sits)[:4] == ["", "", "", "chance_level"]


def test_left_chance_has_one_definition_for_the_trial_and_the_board() -> None:
    """On 872 eval rows a correlation's noise is 2/sqrt(872) = 0.068: 0.03 above chance is not "left chance",
    for the trial's own rule nor for what it tells the population (it used to post at baseline + 0.02)."""
    g = StabilityGuard(StabilityConfig(), warmup_steps=5, total_steps=100, baseline=0.0, mode="max",
                       chance_metric="eval_mcc", chance_loss=CHANCE_LOSS, eval_rows=872)
    assert not g.left_chance({"eval_mcc": 0.03}) and g.left_chance({"eval_mcc": 0.07})
    assert not g.left_chance({"eval_accuracy": 0.9})  # no chance metric in the report
    chance = next(d for d in g.eval_detectors if d.metric == "eval_mcc")
    chance.check(10, {"eval_mcc": 0.03, "eval_loss": 0.6, "train_loss": 0.6}, 0.03)
    assert not chance.learnt


def test_plateau_is_optional() -> None:
    assert not guard().check_eval(50, {"eval_mcc": 0.8, "eval_loss": 0.3, "train_loss": 0.3}, 0.8)
    g = guard(plateau={"enabled": True, "patience": 2}, chance_level={"enabled": False})
    reasons = [g.check_eval(s, {"eval_accuracy": v}, v).reason for s, v in enumerate([0.6, 0.7, 0.7, 0.69])]
    assert reasons == ["", "", "", "plateau"]


def test_disabled_guard_never_fires() -> None:
    g = guard(enabled=False)
    assert not g.check_step(50, float("nan"), 1.0)
    assert not g.check_eval(50, {"eval_accuracy": 0.0}, 0.0)


def test_error_outcomes_name_out_of_memory() -> None:
    from raytune_llm.results.trials import TrialRecord

    oom = TrialRecord("a", {}, "ERROR", error="RuntimeError: CUDA out of memory: tried to allocate 2 GiB",
                      error_text="...torch.OutOfMemoryError: CUDA out of memory...")
    other = TrialRecord("b", {}, "ERROR", error="ValueError: boom", error_text="ValueError: boom")
    assert oom.outcome == "error:oom" and other.outcome == "error"


def _through_a_checkpoint(g: StabilityGuard, tmp_path: Path) -> StabilityGuard:
    """A fresh guard of the same run given `g`'s state as a checkpoint holds it (torch.load, weights_only)."""
    import torch

    torch.save({"guard": g.state_dict()}, tmp_path / "state.pt")
    restored = guard(plateau={"enabled": True, "patience": 3})
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True)["guard"])
    return restored


def test_a_restored_guard_decides_as_the_uninterrupted_one(tmp_path: Path) -> None:
    """#24.5: a trial restored from its checkpoint (resume, a Tune retry, a PBT exploit) is judged on its whole
    history. Each detector below fires only because of what it saw before the checkpoint: a fresh one would not."""
    steps = [(s, 2.0 * 0.97 ** s, 1.0) for s in range(40)] + [(40 + s, 6.0, 1.0) for s in range(10)]
    curve = [(10, 0.3, 0.5), (20, 0.31, 0.5), (30, 0.31, 0.5), (40, 0.3, 0.5), (50, 0.3, 0.5)]
    straight, before = guard(plateau={"enabled": True, "patience": 3}), guard(plateau={"enabled": True, "patience": 3})
    for s, loss, grad in steps[:40]:
        straight.check_step(s, loss, grad)
        before.check_step(s, loss, grad)
    assert evals(straight, curve[:2]) == evals(before, curve[:2]) == ["", ""]
    restored = _through_a_checkpoint(before, tmp_path)
    fresh = guard(plateau={"enabled": True, "patience": 3})
    spike = [straight.check_step(s, loss, grad).reason for s, loss, grad in steps[40:]]
    assert spike == [restored.check_step(s, loss, grad).reason for s, loss, grad in steps[40:]]
    assert "loss_spike" in spike and "loss_spike" not in [fresh.check_step(s, v, g).reason for s, v, g in steps[40:]]
    assert evals(straight, curve[2:]) == evals(restored, curve[2:]) == ["", "", "plateau"]
    assert evals(fresh, curve[2:]) == ["", "", ""]  # from nothing, plateau has no best to be stale against
    assert restored.chance_best == straight.chance_best


def test_at_chance_is_judged_from_the_chance_rules_point_of_the_budget_on() -> None:
    """A slow starter that a scheduler stops early has not been judged: no `at_chance` before `at_fraction` of the
    budget (25% of 100 steps here); from then on, whether the run's best evaluation so far is at chance."""
    g = guard()
    metrics = {"eval_mcc": 0.01, "eval_loss": 0.6}
    assert g.chance_report(10, metrics) == {"left_chance": False}
    assert g.chance_report(30, metrics) == {"at_chance": True, "left_chance": False}
    assert g.chance_report(40, {"eval_mcc": 0.3, "eval_loss": 0.5}) == {"at_chance": False, "left_chance": True}
    assert g.chance_report(50, metrics)["at_chance"] is False  # its best left chance: not a run that learnt nothing
    assert guard(chance_level={"enabled": False}).chance_report(50, metrics) == {}
