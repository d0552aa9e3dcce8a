"""Stability checks run on every training step. Pure Python: no torch, no Ray.

Every rank sees the same all-reduced loss and the same (post-all-reduce) gradient norm, so every rank
reaches the same verdict and the workers stop together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class StepVerdict:
    reason: str  # "" while the trial is healthy
    detail: str = ""


HEALTHY = StepVerdict("")


class NonFiniteDetector:
    """Loss or gradient norm NaN/inf: stop at once, before that step's update is applied."""

    name = "non_finite"

    def check(self, loss: float, grad_norm: float) -> StepVerdict:
        if math.isfinite(loss) and math.isfinite(grad_norm):
            return HEALTHY
        return StepVerdict(self.name, f"loss={loss}, grad_norm={grad_norm}")


class StabilityGuard:
    """Runs the step detectors in order; the first one that fires decides the stop reason."""

    def __init__(self) -> None:
        self.detectors = [NonFiniteDetector()]

    def check_step(self, loss: float, grad_norm: float) -> StepVerdict:
        for detector in self.detectors:
            verdict = detector.check(loss, grad_norm)
            if verdict.reason:
                return verdict
        return HEALTHY
