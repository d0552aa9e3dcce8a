"""The stability guard: detectors that stop a trial whose fine-tuning is failing (a NaN step, a loss spike, an
exploding gradient, stuck at chance level) or has stopped improving (plateau), run inside the training loop. One
module per detector, each registered in `base.detectors`; `guard` builds a run's guard from them. Pure Python: no
torch, no Ray.
"""

# Imported in the order the detectors speak: the first one that fires decides the stop reason.
from raytune_llm.training.stability import non_finite, loss_spike, grad_explosion, chance_level, plateau  # noqa: F401, I001
from raytune_llm.training.stability.base import HEALTHY, Detector, GuardContext, Verdict, detectors
from raytune_llm.training.stability.chance_level import ChanceLevel
from raytune_llm.training.stability.grad_explosion import GradExplosion
from raytune_llm.training.stability.guard import StabilityGuard, enabled_detectors
from raytune_llm.training.stability.loss_spike import LossSpike
from raytune_llm.training.stability.non_finite import NonFinite
from raytune_llm.training.stability.plateau import Plateau

__all__ = ["HEALTHY", "ChanceLevel", "Detector", "GradExplosion", "GuardContext", "LossSpike", "NonFinite",
           "Plateau", "StabilityGuard", "Verdict", "detectors", "enabled_detectors"]
