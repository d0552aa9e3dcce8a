"""The grid as an Optuna sampler (imported when a grid search starts, not at validation).

Optuna's GridSampler enumerates the product of every param's values, the params a `when:` condition leaves out
included: with a conditional space it runs identical trials. This one is given the grid's distinct points
(`grid.grid_points`), shuffled once by the seed, and gives trial number n the n-th of them.
"""

from __future__ import annotations

import random
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial


class PointsSampler(optuna.samplers.BaseSampler):
    def __init__(self, points: list[dict[str, Any]], seed: int | None = None) -> None:
        self.points = list(points)
        random.Random(seed).shuffle(self.points)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        # Under Tune the search ends after search.num_trials = the grid's size (checked by `validate`).
        return self.points[trial.number % len(self.points)][param_name]
