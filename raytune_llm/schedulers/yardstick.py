"""Ray's stopping schedulers, made to spare the yardstick: the trial of a portfolio start that runs the default
recipe (core.yardstick) runs to its full budget, so that every search knows what the recipe everyone starts from
scores, and the pick is never worse than it. Its results still count in the rungs and medians others are judged
by. Module-level classes: Tune pickles the scheduler with the search. Imported only when a search starts."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, MedianStoppingRule, TrialScheduler

from raytune_llm.core.yardstick import is_yardstick


def spared(decision: str, trial: Any) -> str:
    """The scheduler's decision, or CONTINUE where it would stop the yardstick."""
    if decision == TrialScheduler.STOP and is_yardstick(getattr(trial, "config", None)):
        return TrialScheduler.CONTINUE
    return decision


class SparingASHA(AsyncHyperBandScheduler):
    """ASHA; its stop at `max_t` is spared too: the yardstick runs its whole budget even under a shorter max_t."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if (kept := spared(decision, trial)) != decision:
            self._num_stopped -= 1  # its count of stopped trials, for its debug line
        return kept


class SparingMedianStoppingRule(MedianStoppingRule):
    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if (kept := spared(decision, trial)) != decision:
            # The rule remembers whom it stopped and asserts it never hears from them again.
            self._stopped_trials.discard(trial)
        return kept
