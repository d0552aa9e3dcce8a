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
    return str(value)


class ProgressTable(Callback):
    """Prints one row per trial: state, eval rounds, sampled params, last and best metric, stop reason."""

    def __init__(self, metric: str, mode: str, every_s: float = 30.0, stream: TextIO = sys.stdout) -> None:
        self.metric, self.mode, self.every_s, self.stream = metric, mode, every_s, stream
        self.rows: dict[str, dict[str, Any]] = {}
        self._printed_at = 0.0

    def _row(self, trial: Any) -> dict[str, Any]:
        return self.rows.setdefault(trial.trial_id, {"params": dict(trial.config), "iter": 0, "last": None,
                                                     "best": None, "state": "RUNNING", "reason": ""})

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._row(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        row = self._row(trial)
        value = result.get(self.metric)
        row.update(iter=result.get("training_iteration", 0), last=value, reason=result.get("stop_reason", ""))
        if value is not None and not row["reason"]:
            better = row["best"] is None or (value > row["best"] if self.mode == "max" else value < row["best"])
            row["best"] = value if better else row["best"]
        if time.monotonic() - self._printed_at > self.every_s:
            self.print_table()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        row["state"] = "STOPPED" if row["reason"] else "DONE"
        self.print_table()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._row(trial)["state"] = "ERROR"
        self.print_table()

    def print_table(self) -> None:
        self._printed_at = time.monotonic()
        lines = [f"{'trial':<10} {'state':<8} {'iter':>4} {'last':>8} {'best':>8}  params"]
        for tid, r in self.rows.items():
            params = " ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items())
            state = r["state"] + (f" ({r['reason']})" if r["reason"] else "")
            lines.append(f"{tid:<10} {state:<8} {r['iter']:>4} {_fmt(r['last']):>8} {_fmt(r['best']):>8}  {params}")
        print("\n".join(lines), file=self.stream, flush=True)
