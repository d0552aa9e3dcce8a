"""A live trial table for the terminal, printed as trials report and finish."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from ray.tune import Callback


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if math.isfinite(value) else str(value)
    return "-" if value is None else str(value)


class ProgressTable(Callback):
    """One row per trial: state, eval rounds, last and best metric, sampled params; a summary line on top."""

    def __init__(self, metric: str, mode: str, num_trials: int, every_s: float = 30.0,
                 stream: TextIO | None = None) -> None:
        # Tune pickles its callbacks with the experiment state: keep sys.stdout out of the pickle.
        self.metric, self.mode, self.num_trials = metric, mode, num_trials
        self.every_s, self.stream = every_s, stream
        self.rows: dict[str, dict[str, Any]] = {}
        self._started = time.monotonic()
        self._printed_at = 0.0

    def _row(self, trial: Any) -> dict[str, Any]:
        params = trial.config.get("params", trial.config)  # robustness runs nest their params
        return self.rows.setdefault(trial.trial_id, {"params": dict(params), "iter": 0, "last": None,
                                                     "best": None, "state": "RUNNING", "finished": False})

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._row(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        row = self._row(trial)
        value, reason = result.get(self.metric), result.get("stop_reason", "")
        row.update(iter=result.get("training_iteration", 0), last=value)
        row["finished"] = result.get("step") == result.get("total_steps")
        if reason:
            row["state"] = f"UNSTABLE({reason})"
        elif value is not None:
            better = row["best"] is None or (value > row["best"] if self.mode == "max" else value < row["best"])
            row["best"] = value if better else row["best"]
        if time.monotonic() - self._printed_at > self.every_s and not row["finished"]:
            self.print_table()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        if row["state"] == "RUNNING":
            row["state"] = "DONE" if row["finished"] else "EARLY-STOP"
        self.print_table()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._row(trial)["state"] = "ERROR"
        self.print_table()

    def print_table(self) -> None:
        self._printed_at = time.monotonic()
        minutes, seconds = divmod(int(self._printed_at - self._started), 60)
        bests = [(r["best"], tid) for tid, r in self.rows.items() if r["best"] is not None]
        top = (max if self.mode == "max" else min)(bests) if bests else None
        ended = sum(r["state"] != "RUNNING" for r in self.rows.values())
        lines = [f"-- {ended}/{self.num_trials} trials ended, {minutes}m{seconds:02d}s elapsed"
                 + (f", best {self.metric}={_fmt(top[0])} (trial {top[1]})" if top else ""),
                 f"{'trial':<10} {'state':<12} {'iter':>4} {'last':>8} {'best':>8}  params"]
        for tid, r in self.rows.items():
            params = " ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items())
            lines.append(f"{tid:<10} {r['state']:<12} {r['iter']:>4} {_fmt(r['last']):>8} {_fmt(r['best']):>8}  "
                         f"{params}")
        print("\n".join(lines), file=self.stream or sys.stdout, flush=True)
