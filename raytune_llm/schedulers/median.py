"""Median stopping (Golovin et al. 2017, Google Vizier): a trial stops when its best result so far is worse than
the median of the other trials' running averages at the same point. Gentler than ASHA on noisy curves."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from raytune_llm.schedulers.base import Scheduler, schedulers


@schedulers.register("median")
class MedianScheduler(Scheduler):
    name: Literal["median"] = "median"
    grace_period: int = Field(1, ge=1, description="eval rounds before a trial can be stopped")
    min_samples_required: int = Field(3, ge=1, description="trials that must have reached a point to compare")

    def build(self, max_t: int, space: dict[str, Any] | None = None) -> Any:
        from raytune_llm.schedulers.yardstick import SparingMedianStoppingRule

        # Tune's rule pauses a trial it cannot judge yet (too few others at that point) whenever another trial is
        # pending, to judge it later. Pausing stops the trial's processes (a Train trial's whole DDP job) and
        # restarts them when it resumes, and a trial without a checkpoint in Tune starts again from round 1, its
        # rounds reported twice. An endless minimum time slice: a trial it cannot judge yet continues.
        return SparingMedianStoppingRule(
            time_attr="training_iteration", grace_period=min(self.grace_period, max_t),
            min_samples_required=self.min_samples_required, min_time_slice=math.inf)
