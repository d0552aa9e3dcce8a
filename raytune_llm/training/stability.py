"""Stability detectors, run inside the training loop. Pure Python: no torch, no Ray.

Step detectors see every step's all-reduced loss and the (post-all-reduce, pre-clip) gradient norm, which are
identical on every rank, so all ranks reach the same verdict and stop together. Eval detectors see the
all-reduced eval metrics. References: Dodge et al. 2020 (most failed runs are recognisable after a fraction of
training); Mosbach et al. 2021 (failed fine-tuning = optimisation failure, often at chance level).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from raytune_llm.schema.experiment import StabilityConfig


@dataclass
class Verdict:
    reason: str = ""  # "" while the trial is healthy
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.reason)


HEALTHY = Verdict()


class NonFinite:
    """Loss or gradient norm NaN/inf: stop at once (the caller never applies that step's update)."""

    def check(self, step: int, loss: float, grad_norm: float) -> Verdict:
        if math.isfinite(loss) and math.isfinite(grad_norm):
            return HEALTHY
        return Verdict("non_finite", f"loss={loss}, grad_norm={grad_norm} at step {step}",
                       {"loss": str(loss), "grad_norm": str(grad_norm)})


class LossSpike:
    """The smoothed train loss rises above `factor` x its running minimum (and by `min_rise`), after warm-up."""

    def __init__(self, factor: float, smoothing: float, min_rise: float, after_step: int) -> None:
        self.factor, self.smoothing, self.min_rise, self.after_step = factor, smoothing, min_rise, after_step
        self.smoothed: float | None = None
        self.minimum = math.inf

    def check(self, step: int, loss: float, grad_norm: float) -> Verdict:
        s = loss if self.smoothed is None else self.smoothing * self.smoothed + (1 - self.smoothing) * loss
        self.smoothed = s
        if step >= self.after_step and s > self.factor * self.minimum and s - self.minimum > self.min_rise:
            return Verdict("loss_spike", f"smoothed loss {s:.4g} > {self.factor} x running min {self.minimum:.4g}",
                           {"smoothed_loss": s, "min_smoothed_loss": self.minimum})
        self.minimum = min(self.minimum, s)
        return HEALTHY


class GradExplosion:
    """The gradient norm exceeds `factor` x the median of the last `window` steps for `patience` steps in a row,
    after warm-up. One-step spikes of 10x are common in healthy fine-tuning without clipping (seen on SST-2 in
    benchmarks/stability.py); a run that is exploding stays up."""

    def __init__(self, factor: float, window: int, patience: int, after_step: int) -> None:
        self.factor, self.patience, self.after_step = factor, patience, after_step
        self.recent: deque[float] = deque(maxlen=window)
        self.streak = 0

    def check(self, step: int, loss: float, grad_norm: float) -> Verdict:
        if step >= self.after_step and len(self.recent) >= min(10, self.recent.maxlen or 10):
            median = statistics.median(self.recent)
            if grad_norm > self.factor * median:
                self.streak += 1
                if self.streak >= self.patience:
                    return Verdict("grad_explosion", f"grad norm {grad_norm:.4g} > {self.factor} x median "
                                   f"{median:.4g} for {self.streak} steps", {"grad_norm": grad_norm,
                                                                              "median_grad_norm": median})
                return HEALTHY  # a spike stays out of the median it is judged against
            self.streak = 0
        self.recent.append(grad_norm)
        return HEALTHY


class ChanceLevel:
    """From `fraction` of the budget on, a trial whose chance metric (MCC, correlation, entity F1) is not above
    what a model that learnt nothing scores by `margin`, and that shows no sign of learning, is stopped.

    Signs of learning ("not yet" rather than "never"): the eval loss is below the loss of the best constant
    prediction by `loss_margin` (relative; the model's probabilities already carry information, though its
    argmax is still the majority class), or the eval or train loss made a new low (by `loss_margin`) in the last
    `patience` evaluations. A trial showing them is judged again at its next evaluation. Without `patience` + 1
    evaluations there is no trend to read, so the verdict waits for them.

    A trial that has learnt, i.e. was above chance by more than the metric's noise (two standard errors of a
    correlation on `eval_rows` rows, 2/sqrt(n), and at least `margin`) at any evaluation, is never stopped as
    "cannot learn"; it is stopped only if it collapsed back: at chance, with its eval loss at or above the
    constant prediction's for `patience` evaluations in a row (how a too-high learning rate ends).

    With `population`, a trial is also kept while no other trial of the search has been above chance by the same
    fraction of its budget (`peers_learnt` False; None = no population known, the trial's own evidence decides).
    """

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

    def _falling(self, key: str) -> bool:
        values = [v for v in self.history[key] if math.isfinite(v)]
        if len(values) <= self.patience:
            return False
        before, recent = min(values[: -self.patience]), min(values[-self.patience :])
        return recent < before - self.loss_margin * abs(before)

    def learning(self) -> str:
        """Why the trial counts as still learning ("" if it does not)."""
        eval_loss = self.history["eval_loss"][-1] if self.history["eval_loss"] else math.nan
        if self.chance_loss is not None and eval_loss < self.chance_loss * (1 - self.loss_margin):
            return f"eval loss {eval_loss:.4g} below the constant prediction's {self.chance_loss:.4g}"
        for key in ("eval_loss", "train_loss"):
            if self._falling(key):
                return f"{key} still falling"
        return ""

    def collapsed(self) -> bool:
        """At chance with the eval loss no better than a constant prediction's, `patience` evaluations in a row."""
        if self.chance_loss is None or len(self.history["value"]) < self.patience:
            return False
        recent = zip(self.history["value"][-self.patience :], self.history["eval_loss"][-self.patience :])
        return all(v <= self.baseline + self.margin and loss >= self.chance_loss for v, loss in recent)

    def check(self, step: int, metrics: dict[str, float], objective: float, peers_learnt: bool | None = None
              ) -> Verdict:
        value = metrics[self.metric]
        for key in ("eval_loss", "train_loss"):
            self.history[key].append(float(metrics.get(key, math.nan)))
        self.history["value"].append(value)
        self.learnt = self.learnt or value > self.baseline + self.learnt_margin
        if step < self.at_step or value > self.baseline + self.margin:
            return HEALTHY
        values = {self.metric: value, "baseline": self.baseline, "eval_loss": self.history["eval_loss"][-1]}
        if self.learnt:
            if self.collapsed():
                return Verdict("chance_level", f"{self.metric} back at chance ({value:.4f}) and the eval loss no "
                               f"better than a constant prediction's for {self.patience} evaluations, at step "
                               f"{step}: collapsed", values)
            return HEALTHY
        if self.learning() or len(self.history["eval_loss"]) <= self.patience:  # learning, or no trend to read yet
            return HEALTHY
        if self.population and peers_learnt is False:
            return HEALTHY  # no trial of the search has left chance by this point: the task is slow, wait
        return Verdict("chance_level", f"{self.metric} {value:.4f} <= chance level {self.baseline:.4f} + "
                       f"{self.margin} at step {step}, and the loss is not falling", values)


class Plateau:
    """No improvement of the objective by `min_delta` for `patience` evaluations. Not a failure: the trial
    keeps its real score and can still be the best."""

    def __init__(self, patience: int, min_delta: float, mode: str) -> None:
        self.patience, self.min_delta, self.sign = patience, min_delta, 1.0 if mode == "max" else -1.0
        self.best = -math.inf
        self.stale = 0

    def check(self, step: int, metrics: dict[str, float], objective: float, peers_learnt: bool | None = None
              ) -> Verdict:
        value = self.sign * objective
        if value > self.best + self.min_delta:
            self.best, self.stale = value, 0
            return HEALTHY
        self.stale += 1
        if self.stale >= self.patience:
            return Verdict("plateau", f"no improvement for {self.stale} evaluations", {"best": self.sign * self.best})
        return HEALTHY


class StabilityGuard:
    """The configured detectors; the first one that fires decides the stop reason."""

    def __init__(self, cfg: StabilityConfig, warmup_steps: int, total_steps: int, baseline: float, mode: str,
                 chance_metric: str = "eval_mcc", chance_loss: float | None = None,
                 eval_rows: int | None = None) -> None:
        after = max(warmup_steps, cfg.min_steps)
        self.step_detectors: list[Any] = []
        self.eval_detectors: list[Any] = []
        if not cfg.enabled:
            return
        self.step_detectors.append(NonFinite())  # always on while the guard is on: a NaN step is never useful
        if cfg.loss_spike.enabled:
            ls = cfg.loss_spike
            self.step_detectors.append(LossSpike(ls.factor, ls.smoothing, ls.min_rise, after))
        if cfg.grad_explosion.enabled:
            ge = cfg.grad_explosion
            self.step_detectors.append(GradExplosion(ge.factor, ge.window, ge.patience, after))
        if cfg.chance_level.enabled and chance_metric:
            cl = cfg.chance_level
            self.eval_detectors.append(ChanceLevel(cl.at_fraction, cl.margin, baseline, total_steps, chance_metric,
                                                   chance_loss, cl.loss_margin, cl.patience, cl.population,
                                                   eval_rows))
        if cfg.plateau.enabled:
            self.eval_detectors.append(Plateau(cfg.plateau.patience, cfg.plateau.min_delta, mode))

    def check_step(self, step: int, loss: float, grad_norm: float) -> Verdict:
        for detector in self.step_detectors:
            if verdict := detector.check(step, loss, grad_norm):
                return verdict
        return HEALTHY

    @property
    def wants_population(self) -> bool:
        return any(getattr(d, "population", False) for d in self.eval_detectors)

    @property
    def chance_margin(self) -> float:
        return next((d.margin for d in self.eval_detectors if isinstance(d, ChanceLevel)), 0.0)

    def check_eval(self, step: int, metrics: dict[str, float], objective: float,
                   peers_learnt: bool | None = None) -> Verdict:
        for detector in self.eval_detectors:
            if verdict := detector.check(step, metrics, objective, peers_learnt):
                return verdict
        return HEALTHY
