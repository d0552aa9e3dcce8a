"""No improvement of the objective for a while: a healthy early stop, not a failure."""

from __future__ import annotations

import math
from typing import Any

from raytune_llm.training.stability.base import HEALTHY, Detector, GuardContext, Verdict, detectors


@detectors.register("plateau")
class Plateau(Detector):
    """No improvement of the objective by `min_delta` for `patience` evaluations. Not a failure: the trial
    keeps its real score and can still be the best."""

    kind, section, reasons = "eval", "plateau", ("plateau",)
    state = ("best", "stale")

    @classmethod
    def from_config(cls, settings: Any, ctx: GuardContext) -> Plateau:
        return cls(settings.patience, settings.min_delta, ctx.mode)

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


