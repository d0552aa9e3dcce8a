"""What a user sees of a search in the terminal: a live trial table, printed as trials report and end, and the
summary when the search ends (`finish`)."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from ray.tune import Callback

from raytune_llm.core.errors import UserError
from raytune_llm.core.outcomes import BestSoFar, best_of, ended_at_chance, is_failure
from raytune_llm.core.stops import advice, failed_as
from raytune_llm.results.choice import choose_for, gain_over_default
from raytune_llm.results.trials import load_trials, outcome_counts
from raytune_llm.runs.layout import open_run, read_info


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if math.isfinite(value) else str(value)
    return "-" if value is None else str(value)


class ProgressTable(Callback):
    """One row per trial: state, eval rounds, last and best metric, sampled params; a summary line on top."""

    def __init__(self, metric: str, mode: str, num_trials: int, every_s: float = 30.0,
                 stream: TextIO | None = None, watch: list[str] | None = None) -> None:
        # Tune pickles its callbacks with the experiment state: keep sys.stdout out of the pickle.
        self.metric, self.mode, self.num_trials = metric, mode, num_trials
        self.watch = watch or []  # commands that show the search live, printed under the first table
        self.every_s, self.stream = every_s, stream
        self.rows: dict[str, dict[str, Any]] = {}
        self._started = time.monotonic()
        self._printed_at = 0.0
        self.stops = StopPattern()
        self.best = BestSoFar(metric, mode)

    def _row(self, trial: Any) -> dict[str, Any]:
        params = trial.config.get("params", trial.config)  # robustness runs nest their params
        return self.rows.setdefault(trial.trial_id, {"params": dict(params), "iter": 0, "last": None,
                                                     "best": None, "state": "RUNNING", "finished": False})

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._row(trial)
        self.stops.seen(trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        row = self._row(trial)
        value, reason = result.get(self.metric), result.get("stop_reason", "")
        row.update(iter=result.get("training_iteration", 0), last=value)
        row["finished"] = result.get("step") == result.get("total_steps")
        self.best.add(trial.trial_id, result)
        row["best"] = self.best.get(trial.trial_id)  # a failed trial never counts as best
        if is_failure(reason):
            row["state"] = f"UNSTABLE({reason})"
            self.stops.note(trial.trial_id, reason, result)
        if reason and not is_failure(reason):
            row["state"] = f"STOPPED({reason})"
        if time.monotonic() - self._printed_at > self.every_s and not row["finished"]:
            self.print_table()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        if row["state"] == "RUNNING":
            row["state"] = "DONE" if row["finished"] else "EARLY-STOP"
        if ended_at_chance(trial.last_result or {}):  # a failure, beside how it ended (core.outcomes)
            row["state"] = f"AT-CHANCE({row['state']})"
        self.print_table()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._row(trial)["state"] = "ERROR"
        self.print_table()

    def print_table(self) -> None:
        self._printed_at = time.monotonic()
        minutes, seconds = divmod(int(self._printed_at - self._started), 60)
        bests = [(r["best"], tid) for tid, r in self.rows.items() if r["best"] is not None]
        top = best_of(bests, lambda b: b[0], self.mode)
        ended = sum(r["state"] != "RUNNING" for r in self.rows.values())
        lines = [f"-- {ended}/{self.num_trials} trials ended, {minutes}m{seconds:02d}s elapsed"
                 + (f", best {self.metric}={_fmt(top[0])} (trial {top[1]})" if top else ""),
                 f"{'trial':<10} {'state':<12} {'iter':>4} {'last':>8} {'best':>8}  params"]
        for tid, r in self.rows.items():
            params = " ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items())
            lines.append(f"{tid:<10} {r['state']:<12} {r['iter']:>4} {_fmt(r['last']):>8} {_fmt(r['best']):>8}  "
                         f"{params}")
        if self.watch:
            lines += ["watch it live: " + self.watch[0], *(f"               {w}" for w in self.watch[1:])]
            self.watch = []
        print("\n".join(lines), file=self.stream or sys.stdout, flush=True)
        if notice := self.stops.notice():
            print(notice, file=self.stream or sys.stdout, flush=True)


class StopPattern:
    """Notices, once per search, when most trials so far were stopped for the same reason at about the same point:
    then it is the task or the settings, not the trials, and the user should know which setting relaxes the rule."""

    def __init__(self, min_trials: int = 3, share: float = 0.5) -> None:
        self.min_trials, self.share = min_trials, share
        self.stopped: dict[str, tuple[str, float]] = {}  # trial -> (reason, fraction of its budget)
        self.trials: set[str] = set()
        self.said = False

    def seen(self, trial_id: str) -> None:
        self.trials.add(trial_id)

    def note(self, trial_id: str, reason: str, result: dict[str, Any]) -> None:
        self.trials.add(trial_id)
        total = result.get("total_steps") or 0
        self.stopped[trial_id] = (reason, (result.get("step") or 0) / total if total else 0.0)

    def notice(self) -> str:
        if self.said or len(self.trials) < self.min_trials:
            return ""
        for reason in sorted({r for r, _ in self.stopped.values()}):
            fractions = sorted(f for r, f in self.stopped.values() if r == reason)
            if len(fractions) >= self.min_trials and len(fractions) > self.share * len(self.trials) and \
                    fractions[-1] - fractions[0] <= 0.1:
                self.said = True
                return (f"note: {len(fractions)} of {len(self.trials)} trials so far were stopped as {reason} at "
                        f"{fractions[0]:.0%}-{fractions[-1]:.0%} of their budget: the task or the settings, not the "
                        f"trials; to change that: {advice(reason)}")
        return ""


def finish(run_dir: str) -> int:
    """After Tuner.fit returns: a summary, and the resume command if the search was cut short (Ctrl-C)."""
    local = open_run(run_dir)
    trials = load_trials(local)
    counts = outcome_counts(trials)
    print("trials: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    unfinished = sum(n for k, n in counts.items() if k in ("running", "pending", "paused"))
    if unfinished:
        print(f"interrupted with {unfinished} trial(s) unfinished; continue with: raytune-llm resume {run_dir}")
        return 130
    search = read_info(local).experiment.search
    try:
        choice = choose_for(trials, search)
    except UserError:
        print(f"no trial reported a finite {search.metric}: nothing to export; `raytune-llm status {run_dir}` "
              "shows why each trial ended")
        return 0
    if choice.fallback:
        print(f"no healthy trial: every trial failed (the best, trial {choice.trial.trial_id}, "
              f"{failed_as(choice.trial.failure)}, real {search.metric}={choice.score(search.metric):.4g}); export "
              f"falls back to it. To change that: {advice(choice.trial.failure)}")
    else:
        print(f"best: trial {choice.trial.trial_id}, {search.metric}={choice.score(search.metric):.4g}")
        if gain := gain_over_default(trials, search, choice):
            print(f"  {gain.line()}")
    print(f"next: raytune-llm status {run_dir}\n      raytune-llm report {run_dir} --out ./report   (one HTML page "
          f"of plots)\n      raytune-llm export {run_dir} --out ./best-model")
    return 0
