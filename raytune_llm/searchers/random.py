"""Random search: the baseline every other searcher has to beat, and a sound choice for a small budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from raytune_llm.core.strict import Strict

if TYPE_CHECKING:
    from raytune_llm.searchers import Plan


class RandomSearcher(Strict):
    name: Literal["random"] = "random"
    seed: int | None = 0

    def sampler(self, plan: Plan) -> Any:
        import optuna

        return optuna.samplers.RandomSampler(seed=self.seed)
