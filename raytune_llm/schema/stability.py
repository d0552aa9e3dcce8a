"""The `stability:` section: the guard's detectors, each with its own settings (raytune_llm.training.stability)."""

from __future__ import annotations

from pydantic import Field

from raytune_llm.core.strict import Strict


class LossSpikeConfig(Strict):
    enabled: bool = True
    factor: float = Field(3.0, gt=1, description="smoothed loss / its running minimum")
    smoothing: float = Field(0.9, ge=0, lt=1, description="EMA factor of the train loss")
    min_rise: float = Field(0.1, ge=0, description="and at least this far above the minimum")


class GradExplosionConfig(Strict):
    enabled: bool = True
    factor: float = Field(20.0, gt=1, description="grad norm / median of recent grad norms")
    window: int = Field(50, ge=5)
    patience: int = Field(3, ge=1, description="steps in a row above the threshold")


class ChanceLevelConfig(Strict):
    enabled: bool = True
    at_fraction: float = Field(0.25, gt=0, le=1, description="first check, as a fraction of the trial's steps")
    margin: float = Field(0.02, ge=0, description="the chance metric (MCC, Pearson, entity F1) must beat its "
                          "chance level by this much")
    loss_margin: float = Field(0.01, ge=0, description="relative: eval loss this far below the constant "
                               "prediction's, or a loss falling this much, means 'still learning'")
    patience: int = Field(3, ge=1, description="evaluations over which a falling loss counts as still learning")
    population: bool = Field(True, description="also wait while no other trial of the search has left chance by "
                             "the same point of its budget (relative early stopping)")


class PlateauConfig(Strict):
    enabled: bool = False
    patience: int = Field(3, ge=1, description="evaluations without improvement")
    min_delta: float = Field(0.0, ge=0)


class StabilityConfig(Strict):
    enabled: bool = True
    min_steps: int = Field(10, ge=0, description="step detectors wait at least this long (and for warmup)")
    loss_spike: LossSpikeConfig = LossSpikeConfig()
    grad_explosion: GradExplosionConfig = GradExplosionConfig()
    chance_level: ChanceLevelConfig = ChanceLevelConfig()
    plateau: PlateauConfig = PlateauConfig()

