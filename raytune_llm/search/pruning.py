"""Bounded disk: delete the checkpoints of trials that ended early and that export can no longer pick.

Per trial, Ray Train already keeps only the `keep_checkpoints` best and the latest checkpoint. A search of many
trials still fills a disk with the checkpoints of trials that ASHA or the stability guard stopped; this callback
removes them, asking the pick itself (raytune_llm.results.choice) whether each could still be picked, so it never
deletes what export may want:

- a healthy trial that ended early is deleted only once the trials that ended healthy make it impossible for the
  pick to be it (`choice.beaten`: a better one on the metric, or with `search.objectives` one that dominates it
  or is better by more than the tolerance; a running trial's lead proves nothing: the guard may still stop it as
  failing, and export would then pick this one);
- a trial the guard stopped as failing, or that ended at chance level, keeps its checkpoints until the search
  ends: if no healthy trial exists then, export falls back to the best of them, whose checkpoints are kept; the
  others are deleted.

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

from raytune_llm.core.errors import UserError
from raytune_llm.core.outcomes import REAL_PREFIX, better, ended_at_chance, is_failure, is_finite, real_value
from raytune_llm.core.storage import is_uri, join, remove_checkpoints
from raytune_llm.results.choice import beaten, choose, objectives
from raytune_llm.results.trials import TrialRecord
from raytune_llm.schema import SearchConfig

_STATE = ("best", "best_real", "last", "ended", "early", "failed", "order", "folders", "removed", "kept", "recheck")


class PruneStoppedCheckpoints(Callback):
    def __init__(self, run_root: str, search: SearchConfig) -> None:
        self.run_root, self.search = run_root, search
        self.metric, self.mode = search.metric, search.mode
        self.folders: dict[str, str] = {}  # trial -> its folder in the run (an in-process trial's checkpoints)
        self.best: dict[str, dict[str, Any]] = {}  # trial -> its objectives in its best healthy report
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
                          "total_steps": result.get("total_steps"), "at_chance": result.get("at_chance")}
        real = real_value(result, self.metric)
        if is_finite(real) and better(real, self.best_real.get(tid), self.mode):
            self.best_real[tid] = real
        value = result.get(self.metric)
        if not is_failure(result.get("stop_reason", "")) and is_finite(value) and better(
                value, self.best.get(tid, {}).get(self.metric), self.mode):
            self.best[tid] = {m: result.get(m) for m, _ in objectives(self.search)}

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid, last = trial.trial_id, self.last.get(trial.trial_id, {})
        if is_failure(last.get("stop_reason", "")) or ended_at_chance(last):
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
        records = self._records(self.ended | self.failed)
        try:
            choice = choose(records, self.metric, self.mode)
            keep = choice.trial.trial_id if choice.fallback else None  # a healthy pick: no fallback needed
        except UserError:  # nothing with a value to pick
            keep = None
        for tid in sorted(self.failed - {keep}):
            self._remove(tid)
            self.failed.discard(tid)

    def _records(self, trial_ids: set[str]) -> list[TrialRecord]:
        """What the pick needs of these trials, in trial order: a healthy one's best report, a failed one's best
        real value."""
        out = []
        for tid in sorted(trial_ids, key=lambda t: self.order.get(t, 0)):
            reason = self.last.get(tid, {}).get("stop_reason", "")
            if tid in self.failed and tid in self.best_real:
                row = {self.metric: None, REAL_PREFIX + self.metric: self.best_real[tid], "stop_reason": reason,
                       "at_chance": self.last.get(tid, {}).get("at_chance")}
            else:
                row = {**self.best.get(tid, {}), "stop_reason": ""}
            out.append(TrialRecord(tid, {}, "TERMINATED", rows=[row]))
        return out

    def _prune_early(self) -> None:
        if not self.early:  # nothing left to prune: no records to build at every trial end
            return
        ended = self._records(self.ended)
        for tid in sorted(self.early):
            if beaten(tid, ended, self.search):
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
        return {k: (sorted(v) if isinstance(v, set) else dict(v)) for k, v in vars(self).items() if k in _STATE}

    def set_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, set(value) if isinstance(value, list) else dict(value))
