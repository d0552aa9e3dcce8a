"""Median stopping (Golovin et al. 2017, Google Vizier): a trial stops when its best result so far is worse than
the median of the other trials' running averages at the same point. Gentler than ASHA on noisy curves."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from raytune_llm.strict import Strict


class MedianScheduler(Strict):
    name: Literal["median"] = "median"
    uses_searcher: ClassVar[bool] = True
    grace_period: int = Field(1, ge=1, description="eval rounds before a trial can be stopped")
    min_samples_required: int = Field(3, ge=1, description="trials that must have reached a point to compare")

    def build(self, max_t: int, space: dict[str, Any] | None = None) -> Any:
        from ray.tune.schedulers import MedianStoppingRule

        return MedianStoppingRule(time_attr="training_iteration", grace_period=min(self.grace_period, max_t),
                                  min_samples_required=self.min_samples_required)
