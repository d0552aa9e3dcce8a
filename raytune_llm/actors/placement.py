"""An ended trial gives its CPUs and GPUs back at once, so that the next trial can start.

A trial's DDP workers sit in placement groups that the trial's Train controller creates: one per worker-group
start, so a trial whose workers were restarted (a lost worker, a placement attempt that timed out) has had several.
Tune ends a trial (ASHA, the stability guard, a time budget) by stopping the trial's actor, which takes the
controller and its workers down with it; the groups outlive them all (Ray removes a group with its creator only
once the whole job has ended). Train's own clean-up is a detached actor that polls the State API, tracks only the
latest group, and stalls under CPU load: on a busy 2-core machine later trials then waited for resources nobody
used until Train gave up on them after a fixed timeout (6 of 8 trials of one search ended `error`).

So each trial's controller records itself in the search's ledger as it starts (`RecordController`, a Train
callback), and `ReleasePlacements` (a Tune callback in the search's driver) removes, once the trial has ended, every
group that controller created and that is still there: as soon as the GCS reports the controller dead, or after
`GRACE_S` at the latest (removing a group ends any worker left in it). Groups Train already removed, as it does for
a trial that finished normally, are left alone. No State API is involved: the ledger is an actor, and a group's
creator and state come from the GCS's placement-group table.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray._private.state import state as gcs_state
from ray.core.generated import gcs_pb2
from ray.train.v2._internal.execution.callback import ControllerCallback
from ray.tune import Callback
from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

from raytune_llm.actors import named

logger = logging.getLogger(__name__)

# Long enough for a stopped trial's actor to go (and with it its controller and workers) even on a loaded machine;
# short enough that a stuck one does not hold a whole trial's resources.
GRACE_S = 30.0
# How long a controller the GCS reports dead is still watched: its process is killed a moment after that record,
# and a worker-group restart in that moment has been seen to place a new group (left behind, it starved the next
# 2-worker trial of a CPU for good).
SETTLE_S = 30.0


@ray.remote(num_cpus=0)
class PlacementLedger:
    """Which Train controllers (actor ids, hex) each trial ran: one per `fit()`, so a resumed trial has several."""

    def __init__(self) -> None:
        self.controllers: dict[str, list[str]] = {}

    def record(self, trial: str, controller: str) -> None:
        self.controllers.setdefault(trial, []).append(controller)

    def take(self, trial: str) -> list[tuple[str, str]]:
        return [(trial, controller) for controller in self.controllers.pop(trial, [])]

    def take_all(self) -> list[tuple[str, str]]:
        return [entry for trial in list(self.controllers) for entry in self.take(trial)]


def ledger_name(run_root: str) -> str:
    return named.actor_name("placements", run_root)


def start_ledger(run_root: str) -> str:
    return named.start(PlacementLedger, ledger_name(run_root))


def record(name: str, trial: str) -> None:
    """Files the calling actor (a trial's Train controller) under `trial` in the ledger `name`."""
    if not name:
        return
    try:
        ray.get(named.lookup(name).record.remote(trial, ray.get_runtime_context().get_actor_id()),
                timeout=30)
    except (ValueError, ray.exceptions.RayError) as exc:
        named.forget(name)
        # Train's own clean-up still runs; only the prompt release of this trial's resources is lost.
        logger.warning("the search's placement ledger is unreachable (%s); this trial's resources are released "
                       "by Ray Train alone when it ends", type(exc).__name__)


class RecordController(ControllerCallback):
    """Train callback (runs in the trial's controller): records the controller before it places any worker.
    Train appends callbacks that are not `UserCallback`s to its own internal ones, which is where this must run:
    a `UserCallback` hears of nothing before the first report."""

    def __init__(self, ledger: str, trial: str) -> None:
        self.ledger, self.trial = ledger, trial

    def after_controller_start(self, train_run_context: Any) -> None:
        record(self.ledger, self.trial)


def live_groups() -> dict[str, list[PlacementGroup]]:
    """Every group not yet removed, by the actor (id, hex) that created it. Read from the GCS as
    `placement_group_table` reads it; that function leaves the creator out."""
    out: dict[str, list[PlacementGroup]] = {}
    for raw in gcs_state._connect_and_get_accessor().get_placement_group_table():
        data = gcs_pb2.PlacementGroupTableData.FromString(raw)
        if data.state != gcs_pb2.PlacementGroupTableData.REMOVED:
            group = PlacementGroup(ray.PlacementGroupID(data.placement_group_id))
            out.setdefault(data.creator_actor_id.hex(), []).append(group)
    return out


def actor_gone(actor_id: str) -> bool:
    """Whether the GCS has the actor (id, hex) as dead, or not at all."""
    info = gcs_state.actor_table(actor_id)
    return not info or info.get("State") == "DEAD"


def group_removed(group: PlacementGroup) -> bool:
    return placement_group_table(group).get("state", "REMOVED") == "REMOVED"


@dataclass
class _Held:
    trial: str
    controller: str
    ended: float
    gone_since: float | None = None


class ReleasePlacements(Callback):
    """Removes the placement groups of ended trials; ends the ledger with the experiment."""

    def __init__(self, ledger: str) -> None:
        self.ledger = ledger
        self.held: list[_Held] = []
        self.ended: dict[str, str] = {}  # every ended trial's controllers (id -> trial): swept once more at the end
        self.released: list[str] = []  # a trial id per group we removed, in order (for tests and the log)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._hold(self._call("take", trial.trial_id))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._hold(self._call("take", trial.trial_id))

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self.held:
            self.release()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._hold(self._call("take_all"))
        self.held = [_Held(trial, controller, 0.0) for controller, trial in self.ended.items()]
        self.release(force=True)
        named.stop(self.ledger)

    def _call(self, method: str, *args: Any) -> list[tuple[str, str]]:
        try:
            return ray.get(getattr(named.lookup(self.ledger), method).remote(*args), timeout=30)
        except (ValueError, ray.exceptions.RayError) as exc:
            logger.warning("placement ledger %s unreachable (%s); Ray Train's own clean-up applies",
                           self.ledger, type(exc).__name__)
            return []

    def _hold(self, entries: list[tuple[str, str]]) -> None:
        now = time.monotonic()
        self.held += [_Held(trial, controller, now) for trial, controller in entries]
        self.ended.update({controller: trial for trial, controller in entries})

    def release(self, force: bool = False) -> None:
        """Remove the groups of every held controller that is gone (of all of them with `force`, or past GRACE_S).
        A controller is let go SETTLE_S after the GCS first reports it dead: its process outlives that record by
        a moment and has been seen to create a group in it (a worker-group restart racing the trial's end)."""
        groups, now, keep = live_groups(), time.monotonic(), []
        for held in self.held:
            gone = actor_gone(held.controller)
            if gone and held.gone_since is None:
                held.gone_since = now
            if force or gone or now - held.ended > GRACE_S:
                for group in groups.get(held.controller, []):
                    remove_placement_group(group)
                    self.released.append(held.trial)
                    logger.info("released placement group %s of ended trial %s", group.id.hex(), held.trial)
            if not force and (held.gone_since is None or now - held.gone_since < SETTLE_S):
                keep.append(held)  # it may yet create a group (a worker group mid-start, or a dying process)
        self.held = keep
