"""What every stability detector is: a registered class that watches one signal of a running trial, built from its
own section of `stability:` (`section`, None for a detector without settings), giving the stop reasons it names
(`reasons`, rows of raytune_llm.core.stops), and checking itself against an experiment (`problems`). `kind` says
what it watches: "step" detectors see every step's all-reduced loss and the (post-all-reduce, pre-clip) gradient
norm, "eval" detectors see the all-reduced eval metrics; both are identical on every rank, so all ranks reach the
same verdict and stop together.

Adding one: a module with a `Detector` subclass registered with `@detectors.register("name")`, its settings in
schema/stability.py, its stop reason's row in core/stops.py, and its import in __init__ (where the order says which
detector speaks first). Pure Python: no torch, no Ray.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from raytune_llm.core.errors import Problem
from raytune_llm.core.registry import Registry
from raytune_llm.core.stops import STOP_REASONS

if TYPE_CHECKING:
    from raytune_llm.schema import ExperimentConfig


@dataclass
class Verdict:
    reason: str = ""  # "" while the trial is healthy
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.reason)


HEALTHY = Verdict()



@dataclass(frozen=True)
class GuardContext:
    """What every detector of one run may be sized by."""

    warmup_steps: int
    total_steps: int
    baseline: float  # what the task scores on `chance_metric` when nothing was learnt
    mode: str  # the objective's: "max" or "min"
    chance_metric: str = "eval_mcc"  # "" = the task has no chance level
    chance_loss: float | None = None  # the eval loss of the best constant prediction, where the task has one
    eval_rows: int | None = None
    min_steps: int = 10  # stability.min_steps

    @property
    def after_step(self) -> int:
        """Step detectors wait for warmup, and at least `min_steps`."""
        return max(self.warmup_steps, self.min_steps)


class Detector:
    kind: ClassVar[str] = "step"  # "step" or "eval"
    section: ClassVar[str | None] = None  # its settings' field in schema.StabilityConfig
    reasons: ClassVar[tuple[str, ...]] = ()  # the stop reasons it gives
    # The attributes that hold what it has seen so far: saved with each checkpoint and restored with it (resume, a
    # Tune retry, a PBT exploit), so that a restored trial is judged on its whole history, not from scratch.
    state: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict[str, Any]:
        """What it has seen, as plain values (a checkpoint loads with torch.load(weights_only=True))."""
        return {name: copy.deepcopy(list(v) if isinstance(v := getattr(self, name), deque) else v)
                for name in self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.state:
            if name in state:
                current = getattr(self, name)
                value = copy.deepcopy(state[name])
                setattr(self, name, deque(value, maxlen=current.maxlen) if isinstance(current, deque) else value)

    @classmethod
    def from_config(cls, settings: Any, ctx: GuardContext) -> Detector | None:
        """The detector for one run (None: it does not apply to this run, e.g. a task without a chance level)."""
        raise NotImplementedError

    @classmethod
    def problems(cls, cfg: ExperimentConfig) -> list[Problem]:
        return []

    def check(self, *args: Any) -> Verdict:
        """step: check(step, loss, grad_norm); eval: check(step, metrics, objective, peers_learnt)."""
        raise NotImplementedError


def _valid(name: str, cls: Any) -> str | None:
    from raytune_llm.schema import StabilityConfig

    if cls.kind not in ("step", "eval"):
        return f"kind must be 'step' or 'eval', not {cls.kind!r}"
    if cls.section is not None and cls.section not in StabilityConfig.model_fields:
        return f"no stability.{cls.section} section in schema.StabilityConfig"
    if not cls.reasons or any(r not in STOP_REASONS for r in cls.reasons):
        return f"its reasons {cls.reasons} must be rows of core.stops.STOP_REASONS"
    return None


detectors: Registry[type[Detector]] = Registry("stability detector", needs=("problems", "from_config", "check"),
                                               check=_valid)
