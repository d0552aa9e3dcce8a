"""No early stopping: every trial runs its whole budget (the stability guard still stops failing ones)."""

from __future__ import annotations

from typing import Any, Literal

from raytune_llm.strict import Strict


class FIFOScheduler(Strict):
    name: Literal["fifo"] = "fifo"

    def build(self, max_t: int) -> Any:
        from ray.tune.schedulers import FIFOScheduler as TuneFIFO

        return TuneFIFO()
