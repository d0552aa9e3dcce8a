"""Bounded disk: delete the checkpoints of trials that ended early, unless they hold the best result so far.

Per trial, Ray Train already keeps only the `keep_checkpoints` best and the latest checkpoint. A search of many
trials still fills a disk with the checkpoints of trials that ASHA or the stability guard stopped and that will
never be exported; this callback removes those as soon as the trial ends.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from raytune_llm.storage import remove_checkpoints


class PruneStoppedCheckpoints(Callback):
    def __init__(self, train_storage: str, metric: str, mode: str) -> None:
        self.train_storage, self.metric, self.sign = train_storage, metric, 1.0 if mode == "max" else -1.0
        self.best: tuple[float, str] | None = None
        self.last: dict[str, dict[str, Any]] = {}
        self.stopped: set[str] = set()  # ended early, checkpoints still on disk

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.last[trial.trial_id] = result
        value = result.get(self.metric)
        usable = isinstance(value, (int, float)) and not result.get("stop_reason")
        if usable and (self.best is None or self.sign * value > self.sign * self.best[0]):
            self.best = (value, trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = self.last.get(trial.trial_id, {})
        if last.get("stop_reason") or last.get("step") != last.get("total_steps"):
            self.stopped.add(trial.trial_id)
        self._prune()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.stopped.add(trial.trial_id)
        self._prune()

    def _prune(self) -> None:
        keep = self.best[1] if self.best else None
        for trial_id in sorted(self.stopped - {keep}):
            try:
                remove_checkpoints(self.train_storage, trial_id)
            except OSError as exc:  # a full or flaky store must not end the search; the files are only garbage
                print(f"warning: could not delete the checkpoints of trial {trial_id}: {exc}")
            self.stopped.discard(trial_id)
