"""The search's population, for relative early stopping (Dodge et al. 2020): a trial at chance level is stopped
only if another trial of the same search had already left chance by the same point of its budget. When every
trial is still at chance at 30% of its budget, the task is slow, not the trials broken.

One small Ray actor per search (no CPU) holds, per trial, the first fraction of its budget at which it was above
chance. Trials post to it and ask it at each evaluation (rank 0 only; the answer is broadcast to the other ranks so
that all reach the same verdict). Without the actor (a bare run, `train`), the answer is "unknown" and the guard
falls back to the trial's own evidence.

What the board knows is also Tune's: `EndBoard` records, from the trials' reports (`left_chance`, the guard's own
definition), when each trial first left chance, keeps it in the experiment state (Tune's callback get_state/
set_state) and posts it back to a new board on `resume`, so that trials which finished before the interruption, and
never post again, still count.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.tune import Callback

from raytune_llm.actors import named


@ray.remote(num_cpus=0)
class PopulationBoard:
    def __init__(self) -> None:
        self.first_above: dict[str, float] = {}

    def post(self, trial: str, fraction: float, above: bool) -> bool:
        """Record this evaluation; whether another trial was above chance by `fraction` of its budget."""
        if above:
            self.first_above.setdefault(trial, fraction)
        return any(f <= fraction for t, f in self.first_above.items() if t != trial)

    def restore(self, first_above: dict[str, float]) -> None:
        """What a resumed search's trials had posted before it stopped (the earlier fraction wins)."""
        for trial, fraction in first_above.items():
            self.first_above[trial] = min(fraction, self.first_above.get(trial, fraction))

    def known(self) -> dict[str, float]:
        return dict(self.first_above)


def board_name(run_root: str) -> str:
    return named.actor_name("population", run_root)


def start_board(run_root: str) -> str:
    """Start (or find) the run's board; returns the name trials look it up by."""
    return named.start(PopulationBoard, board_name(run_root))


class EndBoard(Callback):
    """Keeps what the run's board knows in Tune's experiment state, gives it back to the board on `resume`, and
    stops the board when the Tune experiment ends (search, resume and robust alike)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.first_above: dict[str, float] = {}  # trial -> the fraction of its budget at which it left chance

    def __setstate__(self, state: dict[str, Any]) -> None:  # one pickled by an older version has no first_above
        self.__dict__.update({"first_above": {}, **state})

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get("left_chance") and result.get("total_steps"):
            self.first_above.setdefault(trial.trial_id, result["step"] / result["total_steps"])

    def get_state(self) -> dict[str, Any]:
        return {"first_above": dict(self.first_above)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.first_above = dict(state.get("first_above") or {})
        if not self.first_above:
            return
        try:
            ray.get(named.lookup(self.name).restore.remote(self.first_above), timeout=30)
        except (ValueError, ray.exceptions.RayError) as exc:
            print(f"warning: the search's population board could not be given back what its trials had posted "
                  f"({type(exc).__name__}); the chance-level check counts only trials that post again")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        named.stop(self.name)


def ask(name: str, trial: str, fraction: float, above: bool) -> bool | None:
    """Post and ask; None when the board cannot be reached (then only the trial's own evidence counts)."""
    if not name:
        return None
    try:
        return bool(ray.get(named.lookup(name).post.remote(trial, fraction, above), timeout=30))
    except (ValueError, ray.exceptions.RayError) as exc:
        named.forget(name)  # gone with a restarted driver: not worth a failed trial
        print(f"warning: the search's population board is unreachable ({type(exc).__name__}); the chance-level "
              "check uses this trial's own evidence only")
        return None
