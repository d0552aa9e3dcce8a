"""A step whose loss or gradient norm is NaN or infinite: stopped at once (the update is never applied). Always on
while the guard is on: a NaN step is never useful."""

from __future__ import annotations

import math
from typing import Any

from raytune_llm.training.stability.base import HEALTHY, Detector, GuardContext, Verdict, detectors


@detectors.register("non_finite")
class NonFinite(Detector):
    """Loss or gradient norm NaN/inf: stop at once (the caller never applies that step's update)."""

    reasons = ("non_finite",)

    @classmethod
    def from_config(cls, settings: Any, ctx: GuardContext) -> NonFinite:
        return cls()

    def check(self, step: int, loss: float, grad_norm: float) -> Verdict:
        if math.isfinite(loss) and math.isfinite(grad_norm):
            return HEALTHY
        return Verdict("non_finite", f"loss={loss}, grad_norm={grad_norm} at step {step}",
                       {"loss": str(loss), "grad_norm": str(grad_norm)})


