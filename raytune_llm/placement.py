"""An ended trial gives its CPUs and GPUs back at once, so that the next trial can start.

A trial's DDP workers sit in a placement group that Train's controller creates. Tune ends a trial (ASHA, the
stability guard, a time budget) by stopping the trial's actor, which takes the controller and its workers down with
it; the placement group outlives them all. Train's own clean-up is a detached actor that polls the State API, and
that API stalls under CPU load: on a busy 2-core machine later trials then waited for resources nobody used until
Train gave up on them after a fixed timeout (6 of 8 trials of one search ended `error`).

So each trial's rank 0 records its placement group in the search's ledger as it starts, and `ReleasePlacements`
(a Tune callback in the search's driver) removes the groups of an ended trial as soon as its workers are gone, or
after `GRACE_S` at the latest (removing a group ends any worker left in it). A group Train already removed, as it
does for a trial that finished normally, is left alone. No State API is involved: the ledger is an actor, the
worker check is a ping, the group's state comes from the GCS.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray.tune import Callback
from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

from raytune_llm import named_actors

logger = logging.getLogger(__name__)

# Long enough for a stopped trial's actor to go (and with it its workers) even on a loaded machine; short enough
# that a stuck one does not hold a whole trial's resources.
GRACE_S = 30.0


@ray.remote(num_cpus=0)
class PlacementLedger:
    """Which placement groups each trial's workers were placed in (one per worker-group start)."""

    def __init__(self) -> None:
        self.groups: dict[str, list[tuple[PlacementGroup, Any]]] = {}

    def record(self, trial: str, group: PlacementGroup, worker: Any) -> None:
        self.groups.setdefault(trial, []).append((group, worker))

    def take(self, trial: str) -> list[tuple[str, PlacementGroup, Any]]:
        return [(trial, group, worker) for group, worker in self.groups.pop(trial, [])]

    def take_all(self) -> list[tuple[str, PlacementGroup, Any]]:
        return [entry for trial in list(self.groups) for entry in self.take(trial)]


def ledger_name(run_root: str) -> str:
    return named_actors.actor_name("placements", run_root)


def start_ledger(run_root: str) -> str:
    return named_actors.start(PlacementLedger, ledger_name(run_root))


def record(name: str, trial: str) -> None:
    """Called by rank 0 as its worker starts: files this worker's placement group under its trial."""
    group = ray.util.get_current_placement_group()
    if not name or group is None:
        return
    try:
        ray.get(named_actors.lookup(name).record.remote(trial, group, ray.get_runtime_context().current_actor),
                timeout=30)
    except (ValueError, ray.exceptions.RayError) as exc:
        named_actors.forget(name)
        # Train's own clean-up still runs; only the prompt release of this trial's resources is lost.
        print(f"warning: the search's placement ledger is unreachable ({type(exc).__name__}); this trial's "
              "resources are released by Ray Train alone when it ends")


@dataclass
class _Held:
    trial: str
    group: PlacementGroup
    worker: Any
    ended: float
    ping: Any = None


def group_removed(group: PlacementGroup) -> bool:
    return placement_group_table(group).get("state", "REMOVED") == "REMOVED"


class ReleasePlacements(Callback):
    """Removes the placement groups of ended trials; ends the ledger with the experiment."""

    def __init__(self, ledger: str) -> None:
        self.ledger = ledger
        self.held: list[_Held] = []
        self.released: list[str] = []  # trial ids whose group we removed, in order (for tests and the log)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._hold(self._call("take", trial.trial_id))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._hold(self._call("take", trial.trial_id))

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self.held:
            self.release()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._hold(self._call("take_all"))
        self.release(force=True)
        named_actors.stop(self.ledger)

    def _call(self, method: str, *args: Any) -> list[tuple[str, PlacementGroup, Any]]:
        try:
            return ray.get(getattr(named_actors.lookup(self.ledger), method).remote(*args), timeout=30)
        except (ValueError, ray.exceptions.RayError) as exc:
            logger.warning("placement ledger %s unreachable (%s); Ray Train's own clean-up applies",
                           self.ledger, type(exc).__name__)
            return []

    def _hold(self, entries: list[tuple[str, PlacementGroup, Any]]) -> None:
        now = time.monotonic()
        self.held += [_Held(trial, group, worker, now) for trial, group, worker in entries]

    def release(self, force: bool = False) -> None:
        """Remove every held group whose workers are gone (all of them with `force`, or past GRACE_S)."""
        now, keep = time.monotonic(), []
        for held in self.held:
            if group_removed(held.group):
                continue  # Train removed it (the trial ended normally)
            if force or now - held.ended > GRACE_S or _worker_gone(held):
                remove_placement_group(held.group)
                self.released.append(held.trial)
                logger.info("released placement group %s of ended trial %s", held.group.id.hex(), held.trial)
            else:
                keep.append(held)
        self.held = keep


def _worker_gone(held: _Held) -> bool:
    """A ping answered with an actor error: the worker, and so the controller that owned it, is gone."""
    if held.ping is None:
        held.ping = held.worker.__ray_ready__.remote()
    ready, _ = ray.wait([held.ping], timeout=0)
    if not ready:
        return False
    try:
        ray.get(held.ping)
    except ray.exceptions.RayActorError:
        return True
    held.ping = None  # alive a moment ago: ask again at the next step
    return False
