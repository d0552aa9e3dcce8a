"""Metrics by hand, worst finite values, and the step detectors on synthetic sequences."""

from __future__ import annotations

import math

import pytest

from raytune_llm.metrics import classification_metrics, worst_value
from raytune_llm.stability import StabilityGuard


def test_accuracy_and_macro_f1_match_hand_computation() -> None:
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 2, 0]
    m = classification_metrics(preds, labels, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # F1 per class: 0 -> 2*1/(2+1+1)=0.5, 1 -> 2*2/(4+1+0)=0.8, 2 -> 2*1/(2+0+1)=2/3
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_majority_predictor_has_low_macro_f1() -> None:
    m = classification_metrics([0] * 10, [0] * 8 + [1] * 2, 2)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx((2 * 8 / (16 + 2) + 0) / 2)


def test_worst_value_is_finite_and_on_the_bad_side() -> None:
    assert worst_value("eval_accuracy", "max") == 0.0
    assert worst_value("eval_macro_f1", "min") == 1.0
    assert math.isfinite(worst_value("eval_loss", "min")) and worst_value("eval_loss", "min") > 1e6
    assert worst_value("eval_custom", "max") < -1e6


@pytest.mark.parametrize(("loss", "grad"), [(float("nan"), 1.0), (1.0, float("inf")), (float("-inf"), 2.0)])
def test_non_finite_step_stops(loss: float, grad: float) -> None:
    verdict = StabilityGuard().check_step(loss, grad)
    assert verdict.reason == "non_finite"


def test_finite_steps_pass() -> None:
    guard = StabilityGuard()
    assert all(not guard.check_step(0.7 - i * 0.01, 1.0 + i).reason for i in range(50))
