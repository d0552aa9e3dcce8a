"""Random search: the baseline every other searcher has to beat, and a sound choice for a small budget."""

from __future__ import annotations

from typing import Any, Literal

from raytune_llm.searchers.base import Plan, Searcher, searchers


@searchers.register("random")
class RandomSearcher(Searcher):
    name: Literal["random"] = "random"

    def sampler(self, plan: Plan) -> Any:
        import optuna

        return optuna.samplers.RandomSampler(seed=self.seed)
