"""Successive halving without waiting (ASHA, Li et al. 2020): at each rung (grace_period, x reduction_factor, ...)
a trial continues only if it is in the top 1/reduction_factor of the trials that reached that rung (the default
recipe of a portfolio start always continues: schedulers/yardstick.py). `hyperband`
runs several such brackets side by side, each with a different grace period, which hedges against a grace period
too short for slow starters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from raytune_llm.schedulers.base import Scheduler, schedulers


@schedulers.register("asha")
class ASHAScheduler(Scheduler):
    name: Literal["asha"] = "asha"
    grace_period: int = Field(1, ge=1, description="eval rounds every trial gets")
    reduction_factor: float = Field(2, gt=1)
    max_t: int | None = Field(None, ge=1, description="eval rounds; default: all of a trial's rounds")
    brackets: int = 1

    def build(self, max_t: int, space: dict[str, Any] | None = None) -> Any:
        from raytune_llm.schedulers.yardstick import SparingASHA

        max_t = self.max_t or max_t
        return SparingASHA(time_attr="training_iteration", max_t=max_t,
                                       grace_period=min(self.grace_period, max_t),
                                       reduction_factor=self.reduction_factor, brackets=self.brackets)


@schedulers.register("hyperband")
class HyperbandScheduler(ASHAScheduler):
    name: Literal["hyperband"] = "hyperband"  # type: ignore[assignment]
    brackets: int = Field(3, ge=1, description="brackets, each with grace_period x reduction_factor^i")
