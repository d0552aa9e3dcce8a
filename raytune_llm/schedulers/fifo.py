"""No early stopping: every trial runs its whole budget (the stability guard still stops failing ones)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from raytune_llm.core.strict import Strict


class FIFOScheduler(Strict):
    name: Literal["fifo"] = "fifo"
    uses_searcher: ClassVar[bool] = True

    def build(self, max_t: int, space: dict[str, Any] | None = None) -> Any:
        from ray.tune.schedulers import FIFOScheduler as TuneFIFO

        return TuneFIFO()
