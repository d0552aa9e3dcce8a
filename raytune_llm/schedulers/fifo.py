"""No early stopping: every trial runs its whole budget (the stability guard still stops failing ones)."""

from __future__ import annotations

from typing import Any, Literal

from raytune_llm.schedulers.base import Scheduler, schedulers


@schedulers.register("fifo")
class FIFOScheduler(Scheduler):
    name: Literal["fifo"] = "fifo"

    def build(self, max_t: int, space: dict[str, Any] | None = None) -> Any:
        from ray.tune.schedulers import FIFOScheduler as TuneFIFO

        return TuneFIFO()
