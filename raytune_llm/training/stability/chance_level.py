"""A trial stuck at chance level, by its own evidence and (optionally) its population's; see ChanceLevel.

References: Dodge et al. 2020 (most failed runs are recognisable after a fraction of training); Mosbach et al. 2021
(failed fine-tuning = optimisation failure, often at chance level)."""

from __future__ import annotations

import math
from typing import Any

from raytune_llm.training.stability.base import HEALTHY, Detector, GuardContext, Verdict, detectors


@detectors.register("chance_level")
class ChanceLevel(Detector):
    """From `fraction` of the budget on, a trial whose chance metric (MCC, correlation, entity F1) is not above
    what a model that learnt nothing scores by `margin`, and that shows no sign of learning, is stopped.

    Signs of learning ("not yet" rather than "never"): the eval loss was below the loss of the best constant
    prediction by `loss_margin` (relative; the model's probabilities already carry information, though its
    argmax is still the majority class) at one of the last `patience` evaluations, or the eval or train loss made
    a new low (by `loss_margin`) in them. A trial showing them is judged again at its next evaluation. Without
    `patience` + 1 evaluations there is no trend to read, so the verdict waits for them.

    "Left chance" has one definition (`left_chance`), the one the search's population board is told too: above
    chance by more than the metric's noise (two standard errors of a correlation on `eval_rows` rows, 2/sqrt(n),
    and at least `margin`). A trial that has left chance is not stopped while it stays off chance; one that falls
    back to chance for `patience` evaluations in a row is judged like any other from then on (a too-high learning
    rate that collapsed, or a run that sits at chance with its eval loss a hair below the constant prediction's).

    With `population`, a trial is also kept while no other trial of the search has left chance by the same
    fraction of its budget (`peers_learnt` False; None = no population known, the trial's own evidence decides).
    """

    kind, section, reasons = "eval", "chance_level", ("chance_level",)
    state = ("history", "learnt")

    @classmethod
    def from_config(cls, settings: Any, ctx: GuardContext) -> ChanceLevel | None:
        if not ctx.chance_metric:  # the task has no chance level (causal LM)
            return None
        return cls(settings.at_fraction, settings.margin, ctx.baseline, ctx.total_steps, ctx.chance_metric,
                   ctx.chance_loss, settings.loss_margin, settings.patience, settings.population, ctx.eval_rows)

    def __init__(self, fraction: float, margin: float, baseline: float, total_steps: int,
                 metric: str = "eval_mcc", chance_loss: float | None = None, loss_margin: float = 0.01,
                 patience: int = 3, population: bool = True, eval_rows: int | None = None) -> None:
        self.at_step = max(1, math.ceil(fraction * total_steps))
        self.margin, self.baseline, self.metric = margin, baseline, metric
        self.chance_loss, self.loss_margin, self.patience = chance_loss, loss_margin, patience
        self.population = population
        self.learnt_margin = max(margin, 2 / math.sqrt(eval_rows)) if eval_rows else margin
        self.history: dict[str, list[float]] = {"eval_loss": [], "train_loss": [], "value": []}
        self.learnt = False

    def left_chance(self, value: float) -> bool:
        """Above chance by more than the metric's noise: what "has learnt" means here and on the population board."""
        return value > self.baseline + self.learnt_margin

    def at_chance(self, value: float) -> bool:
        """Not above chance by `margin`; also what the guard's `at_chance` report applies to the run's best value
        (a run whose best is at chance learnt nothing, whoever stopped it)."""
        return value <= self.baseline + self.margin

    def _falling(self, key: str) -> bool:
        values = [v for v in self.history[key] if math.isfinite(v)]
        if len(values) <= self.patience:
            return False
        before, recent = min(values[: -self.patience]), min(values[-self.patience :])
        return recent < before - self.loss_margin * abs(before)

    def learning(self) -> str:
        """Why the trial counts as still learning ("" if it does not)."""
        recent = [v for v in self.history["eval_loss"][-self.patience :] if math.isfinite(v)]
        eval_loss = min(recent) if recent else math.nan  # a bouncy run's best of its last few
        if self.chance_loss is not None and eval_loss < self.chance_loss * (1 - self.loss_margin):
            return f"eval loss {eval_loss:.4g} below the constant prediction's {self.chance_loss:.4g}"
        for key in ("eval_loss", "train_loss"):
            if self._falling(key):
                return f"{key} still falling"
        return ""

    def fell_back(self) -> bool:
        """Had left chance, and is back at it for the last `patience` evaluations."""
        recent = self.history["value"][-self.patience :]
        return self.learnt and len(recent) == self.patience and all(self.at_chance(v) for v in recent)

    def check(self, step: int, metrics: dict[str, float], objective: float, peers_learnt: bool | None = None
              ) -> Verdict:
        value = metrics[self.metric]
        for key in ("eval_loss", "train_loss"):
            self.history[key].append(float(metrics.get(key, math.nan)))
        self.history["value"].append(value)
        self.learnt = self.learnt or self.left_chance(value)
        if step < self.at_step or not self.at_chance(value):
            return HEALTHY
        if self.learnt and not self.fell_back():
            return HEALTHY  # it has learnt; one evaluation back at chance is a bounce
        if self.learning() or len(self.history["eval_loss"]) <= self.patience:  # learning, or no trend to read yet
            return HEALTHY
        if self.population and peers_learnt is False:
            return HEALTHY  # no trial of the search has left chance by this point: the task is slow, wait
        values = {self.metric: value, "baseline": self.baseline, "eval_loss": self.history["eval_loss"][-1]}
        again = f", back at it for {self.patience} evaluations after it had left it" if self.learnt else ""
        return Verdict("chance_level", f"{self.metric} {value:.4f} <= chance level {self.baseline:.4f} + "
                       f"{self.margin} at step {step}{again}, and the loss is not falling", values)


