"""The search's population, for relative early stopping (Dodge et al. 2020): a trial at chance level is stopped
only if another trial of the same search had already left chance by the same point of its budget. When every
trial is still at chance at 30% of its budget, the task is slow, not the trials broken.

One small Ray actor per search (no CPU) holds, per trial, the first fraction of its budget at which it was above
chance. Trials post to it and ask it at each evaluation (rank 0 only; the answer is broadcast to the other ranks so
that all reach the same verdict). Without the actor (a bare run, `train`), the answer is "unknown" and the guard
falls back to the trial's own evidence.
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


def board_name(run_root: str) -> str:
    return named.actor_name("population", run_root)


def start_board(run_root: str) -> str:
    """Start (or find) the run's board; returns the name trials look it up by."""
    return named.start(PopulationBoard, board_name(run_root))


class EndBoard(Callback):
    """Stops the run's board when the Tune experiment ends (search, resume and robust alike)."""

    def __init__(self, name: str) -> None:
        self.name = name

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
