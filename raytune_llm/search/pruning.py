"""Bounded disk: delete the checkpoints of trials that ended early and that export can no longer pick.

Per trial, Ray Train already keeps only the `keep_checkpoints` best and the latest checkpoint. A search of many
trials still fills a disk with the checkpoints of trials that ASHA or the stability guard stopped; this callback
removes them, following the rule export uses (`results.choose`), so it never deletes what export may want:

- a healthy trial that ended early is deleted only once an *ended* healthy trial has a strictly better value (a
  running trial's lead proves nothing: the guard may still stop it as failing, and export would then pick this one);
- a trial the guard stopped as failing keeps its checkpoints until the search ends: if no healthy trial exists
  then, export falls back to the best of them, whose checkpoints are kept; the others are deleted.

A stopped Train trial's workers may still be writing a checkpoint when Tune reports the trial complete (they run
ahead of the report that stopped them), so a deleted trial's folder is swept again at the next trial end and at the
end of the search, when Tune has stopped every trial's actors (three listings per deleted trial in all, which
matters on cloud storage with thousands of trials). On local storage, where checkpoints are staged in the trial's
folder before they are reported, every ended trial's folder is swept the same way of what its killed processes
staged and never reported.

Its memory is part of Tune's experiment state (get_state/set_state), so it survives `resume`.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from raytune_llm.core.outcomes import best_of, better, is_failure, is_finite, real_value
from raytune_llm.core.storage import is_uri, join, remove_checkpoints


class PruneStoppedCheckpoints(Callback):
    def __init__(self, run_root: str, metric: str, mode: str) -> None:
        self.run_root, self.metric, self.mode = run_root, metric, mode
        self.folders: dict[str, str] = {}  # trial -> its folder in the run (an in-process trial's checkpoints)
        self.best: dict[str, float] = {}  # trial -> its best value of a healthy report
        self.best_real: dict[str, float] = {}  # trial -> its best real value (failed trials: the fallback)
        self.last: dict[str, dict[str, Any]] = {}  # trial -> its last report (stop reason, step)
        self.ended: set[str] = set()  # trials that ended healthy (done or early)
        self.early: set[str] = set()  # ... of which those that ended early, checkpoints still on disk
        self.failed: set[str] = set()  # trials that ended as failures, checkpoints still on disk
        self.order: dict[str, int] = {}  # trial -> when first seen: between equal values export picks the earlier
        self.removed: set[str] = set()  # trials whose checkpoints were deleted: swept again at the end
        self.kept: set[str] = set()  # ended trials with checkpoints: swept of staged leftovers (local storage)
        self.recheck: set[str] = set()  # of both, those not yet swept again since they ended

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.order.setdefault(trial.trial_id, len(self.order))
        self.folders[trial.trial_id] = trial.storage.trial_dir_name

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        tid = trial.trial_id
        self.order.setdefault(tid, len(self.order))
        self.last[tid] = {"stop_reason": result.get("stop_reason", ""), "step": result.get("step"),
                          "total_steps": result.get("total_steps")}
        real = real_value(result, self.metric)
        if is_finite(real) and better(real, self.best_real.get(tid), self.mode):
            self.best_real[tid] = real
        value = result.get(self.metric)
        if not is_failure(result.get("stop_reason", "")) and is_finite(value) and better(value, self.best.get(tid),
                                                                                           self.mode):
            self.best[tid] = value

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid, last = trial.trial_id, self.last.get(trial.trial_id, {})
        if is_failure(last.get("stop_reason", "")):
            self.best.pop(tid, None)
            self.failed.add(tid)
        else:
            self.ended.add(tid)
            if last.get("step") != last.get("total_steps") or last.get("stop_reason"):
                self.early.add(tid)
        self._sweep()
        self._prune_early()
        if tid not in self.removed and not is_uri(self.run_root):  # staging: on local (or mounted) storage only
            self.kept.add(tid)
            self.recheck.add(tid)
            self._delete(tid)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.best.pop(trial.trial_id, None)  # export never picks an errored trial
        self.best_real.pop(trial.trial_id, None)
        self._remove(trial.trial_id)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._sweep(everything=True)
        self._prune_early()
        if any(t in self.best for t in self.ended):
            keep = None  # a healthy trial exists: no fallback will be needed
        else:  # the fallback export picks: the best real value, the earliest trial among equals
            scored = sorted((t for t in self.failed if t in self.best_real), key=lambda t: self.order.get(t, 0))
            keep = best_of(scored, lambda t: self.best_real[t], self.mode)
        for tid in sorted(self.failed - {keep}):
            self._remove(tid)
            self.failed.discard(tid)

    def _beaten(self, tid: str) -> bool:
        """Whether export can never pick `tid`: an ended healthy trial is better, or as good and earlier."""
        value = self.best.get(tid)
        if value is None:
            return True
        first = self.order.get(tid, 0)
        return any(better(self.best[e], value, self.mode) or (self.best[e] == value and self.order.get(e, 0) < first)
                   for e in self.ended if e in self.best and e != tid)

    def _prune_early(self) -> None:
        for tid in sorted(self.early):
            if self._beaten(tid):
                self._remove(tid)
                self.early.discard(tid)

    def _sweep(self, everything: bool = False) -> None:
        """Sweep again, for late writes, the trials that ended since the last sweep (`everything`: every ended one)."""
        for tid in sorted(self.removed | self.kept if everything else self.recheck):
            self._delete(tid)
        self.recheck.clear()

    def _remove(self, trial_id: str) -> None:
        self.removed.add(trial_id)
        self.kept.discard(trial_id)
        self.recheck.add(trial_id)
        self._delete(trial_id)

    def _delete(self, trial_id: str) -> None:
        """Delete a removed trial's checkpoints, or only what a kept trial's processes staged."""
        staged_only = trial_id not in self.removed
        try:
            # A Train trial's checkpoints are in train/<trial id>, an in-process trial's in its own folder.
            remove_checkpoints(join(self.run_root, "train"), trial_id, staged_only)
            if trial_id in self.folders:
                remove_checkpoints(self.run_root, self.folders[trial_id], staged_only)
        except OSError as exc:  # a full or flaky store must not end the search; the files are only garbage
            print(f"warning: could not delete the checkpoints of trial {trial_id}: {exc}")

    def get_state(self) -> dict[str, Any]:
        return {k: (sorted(v) if isinstance(v, set) else dict(v)) for k, v in vars(self).items()
                if k in ("best", "best_real", "last", "ended", "early", "failed", "order", "folders", "removed",
                         "kept", "recheck")}

    def set_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, set(value) if isinstance(value, list) else dict(value))
