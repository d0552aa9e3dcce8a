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

from raytune_llm.config import StabilityConfig

# Stop reasons whose trials are failures: they report the worst finite objective and can never be "best".
FAILURE_REASONS = ("non_finite", "loss_spike", "grad_explosion", "chance_level")


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
    """At `fraction` of the budget, the task's chance metric (accuracy, correlation, entity F1) is not above what
    a model that learnt nothing scores (the majority class, 0) by `margin`."""

    def __init__(self, fraction: float, margin: float, baseline: float, total_steps: int,
                 metric: str = "eval_accuracy") -> None:
        self.at_step = max(1, math.ceil(fraction * total_steps))
        self.margin, self.baseline, self.metric = margin, baseline, metric
        self.done = False

    def check(self, step: int, metrics: dict[str, float], objective: float) -> Verdict:
        if self.done or step < self.at_step:
            return HEALTHY
        self.done = True  # checked once, at the first evaluation past the mark
        value = metrics[self.metric]
        if value <= self.baseline + self.margin:
            return Verdict("chance_level", f"{self.metric} {value:.4f} <= chance level {self.baseline:.4f} + "
                           f"{self.margin} at step {step}", {self.metric: value, "baseline": self.baseline})
        return HEALTHY


class Plateau:
    """No improvement of the objective by `min_delta` for `patience` evaluations. Not a failure: the trial
    keeps its real score and can still be the best."""

    def __init__(self, patience: int, min_delta: float, mode: str) -> None:
        self.patience, self.min_delta, self.sign = patience, min_delta, 1.0 if mode == "max" else -1.0
        self.best = -math.inf
        self.stale = 0

    def check(self, step: int, metrics: dict[str, float], objective: float) -> Verdict:
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
                 chance_metric: str = "eval_accuracy") -> None:
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
            self.eval_detectors.append(ChanceLevel(cl.at_fraction, cl.margin, baseline, total_steps, chance_metric))
        if cfg.plateau.enabled:
            self.eval_detectors.append(Plateau(cfg.plateau.patience, cfg.plateau.min_delta, mode))

    def check_step(self, step: int, loss: float, grad_norm: float) -> Verdict:
        for detector in self.step_detectors:
            if verdict := detector.check(step, loss, grad_norm):
                return verdict
        return HEALTHY

    def check_eval(self, step: int, metrics: dict[str, float], objective: float) -> Verdict:
        for detector in self.eval_detectors:
            if verdict := detector.check(step, metrics, objective):
                return verdict
        return HEALTHY
