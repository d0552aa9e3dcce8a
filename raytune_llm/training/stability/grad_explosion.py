"""A gradient explosion: the gradient norm far above its recent median, step after step, after warm-up."""

from __future__ import annotations

import statistics
from collections import deque
from typing import Any

from raytune_llm.training.stability.base import HEALTHY, Detector, GuardContext, Verdict, detectors


@detectors.register("grad_explosion")
class GradExplosion(Detector):
    """The gradient norm exceeds `factor` x the median of the last `window` steps for `patience` steps in a row,
    after warm-up. One-step spikes of 10x are common in healthy fine-tuning without clipping (seen on SST-2 in
    benchmarks/stability.py); a run that is exploding stays up."""

    section, reasons = "grad_explosion", ("grad_explosion",)
    state = ("recent", "streak")

    @classmethod
    def from_config(cls, settings: Any, ctx: GuardContext) -> GradExplosion:
        return cls(settings.factor, settings.window, settings.patience, ctx.after_step)

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


