"""The stability guard of one run: the registered detectors its `stability:` section enables; the first one that
fires decides the stop reason."""

from __future__ import annotations

from typing import Any

from raytune_llm.schema import StabilityConfig
from raytune_llm.training.stability.base import HEALTHY, Detector, GuardContext, Verdict, detectors
from raytune_llm.training.stability.chance_level import ChanceLevel


def enabled_detectors(cfg: StabilityConfig) -> list[type[Detector]]:
    """The detectors `cfg` turns on, in the order they speak (registration order)."""
    if not cfg.enabled:
        return []
    return [cls for _, cls in detectors if cls.section is None or getattr(cfg, cls.section).enabled]


class StabilityGuard:
    def __init__(self, cfg: StabilityConfig, warmup_steps: int, total_steps: int, baseline: float, mode: str,
                 chance_metric: str = "eval_mcc", chance_loss: float | None = None,
                 eval_rows: int | None = None) -> None:
        ctx = GuardContext(warmup_steps, total_steps, baseline, mode, chance_metric, chance_loss, eval_rows,
                           cfg.min_steps)
        self.step_detectors: list[Any] = []
        self.eval_detectors: list[Any] = []
        for cls in enabled_detectors(cfg):
            detector = cls.from_config(getattr(cfg, cls.section) if cls.section else None, ctx)
            if detector is not None:
                (self.step_detectors if cls.kind == "step" else self.eval_detectors).append(detector)

    def check_step(self, step: int, loss: float, grad_norm: float) -> Verdict:
        for detector in self.step_detectors:
            if verdict := detector.check(step, loss, grad_norm):
                return verdict
        return HEALTHY

    @property
    def wants_population(self) -> bool:
        return any(getattr(d, "population", False) for d in self.eval_detectors)

    def left_chance(self, metrics: dict[str, float]) -> bool:
        """Whether this evaluation left chance, as the chance-level detector defines it (for the population board)."""
        detector = next((d for d in self.eval_detectors if isinstance(d, ChanceLevel)), None)
        return detector is not None and detector.metric in metrics and detector.left_chance(metrics[detector.metric])

    def check_eval(self, step: int, metrics: dict[str, float], objective: float,
                   peers_learnt: bool | None = None) -> Verdict:
        for detector in self.eval_detectors:
            if verdict := detector.check(step, metrics, objective, peers_learnt):
                return verdict
        return HEALTHY
