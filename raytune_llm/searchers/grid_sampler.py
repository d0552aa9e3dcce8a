"""Optuna's GridSampler as a Tune search runs it (imported when a grid search starts, not at validation)."""

from __future__ import annotations

from typing import Any

import optuna


class TuneGridSampler(optuna.samplers.GridSampler):
    """Optuna stops the study once the grid is done, which raises outside `study.optimize`; under Tune the search
    ends by itself after search.num_trials = the grid's size (checked by `validate`)."""

    def after_trial(self, *args: Any) -> None:
        return None
