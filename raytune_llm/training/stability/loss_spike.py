"""A loss spike: the smoothed train loss far above its running minimum, after warm-up."""

from __future__ import annotations

import math
from typing import Any

from raytune_llm.training.stability.base import HEALTHY, Detector, GuardContext, Verdict, detectors


@detectors.register("loss_spike")
class LossSpike(Detector):
    """The smoothed train loss rises above `factor` x its running minimum (and by `min_rise`), after warm-up."""

    section, reasons = "loss_spike", ("loss_spike",)
    state = ("smoothed", "minimum")

    @classmethod
    def from_config(cls, settings: Any, ctx: GuardContext) -> LossSpike:
        return cls(settings.factor, settings.smoothing, settings.min_rise, ctx.after_step)

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


