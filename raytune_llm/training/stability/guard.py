"""The stability guard of one run: the registered detectors its `stability:` section enables; the first one that
fires decides the stop reason. It also keeps the run's best chance metric, for the `at_chance` its reports carry
(whether the run has left chance level at all, by the chance-level rule's own definition, whoever ends the run; with
the rule off, `stability.chance_level.enabled: false`, nothing is judged against chance), and its state (each
detector's and that best) goes into each checkpoint and comes back with it."""

from __future__ import annotations

import math
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
        self.by_name: dict[str, Detector] = {}  # by registered name: what its saved state is filed under
        names = {cls: name for name, cls in detectors}
        for cls in enabled_detectors(cfg):
            detector = cls.from_config(getattr(cfg, cls.section) if cls.section else None, ctx)
            if detector is not None:
                (self.step_detectors if cls.kind == "step" else self.eval_detectors).append(detector)
                self.by_name[names[cls]] = detector
        self.chance: ChanceLevel | None = next((d for d in self.eval_detectors if isinstance(d, ChanceLevel)), None)
        self.chance_best: float | None = None  # the best chance metric of the run's evaluations so far

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
        detector = self.chance
        return detector is not None and detector.metric in metrics and detector.left_chance(metrics[detector.metric])

    def chance_report(self, step: int, metrics: dict[str, float]) -> dict[str, bool]:
        """What an evaluation report says of chance level: `at_chance`, whether every evaluation so far was at
        chance, from the point of the budget at which the chance rule starts judging (`at_fraction`) on: before it
        a slow starter has not been judged, by the guard or by anyone (core.outcomes fails a run that ended at
        chance); and `left_chance`, whether this one left it (what the population board is told: saved with the
        search, so a resumed search's board knows it). Nothing for a task without a chance level, or with the
        chance-level rule off."""
        detector = self.chance
        value = metrics.get(detector.metric) if detector is not None else None
        if value is None:
            return {}
        if math.isfinite(value) and (self.chance_best is None or value > self.chance_best):
            self.chance_best = float(value)
        judged = self.chance_best is not None and step >= detector.at_step
        seen = {"at_chance": detector.at_chance(self.chance_best)} if judged else {}
        return {**seen, "left_chance": detector.left_chance(value)}

    def state_dict(self) -> dict[str, Any]:
        detectors_state = {name: detector.state_dict() for name, detector in self.by_name.items()}
        return {"detectors": detectors_state, "chance_best": self.chance_best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what a checkpoint's guard had seen (a detector it did not have starts afresh)."""
        saved = state.get("detectors") or {}
        for name, detector in self.by_name.items():
            detector.load_state_dict(saved.get(name, {}))
        self.chance_best = state.get("chance_best", self.chance_best)

    def check_eval(self, step: int, metrics: dict[str, float], objective: float,
                   peers_learnt: bool | None = None) -> Verdict:
        for detector in self.eval_detectors:
            if verdict := detector.check(step, metrics, objective, peers_learnt):
                return verdict
        return HEALTHY
