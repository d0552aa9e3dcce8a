"""Small per-search Ray actors (no CPU), found by a name derived from the run's root. The driver's handle keeps
one alive while its search runs (and ends it with the search); a worker looks one up once per process, not at every
call. Used by the population board and the placement ledger."""

from __future__ import annotations

import hashlib
from typing import Any

import ray

_HANDLES: dict[str, Any] = {}


def actor_name(kind: str, run_root: str) -> str:
    return f"raytune-llm-{kind}-" + hashlib.sha1(run_root.encode()).hexdigest()[:12]


def start(actor_class: Any, name: str) -> str:
    """Start (or find) the actor; returns the name workers look it up by."""
    if name not in _HANDLES:
        _HANDLES[name] = actor_class.options(name=name, get_if_exists=True).remote()
    return name


def stop(name: str) -> None:
    """End the actor with its search (a process per finished search would otherwise pile up in a long driver)."""
    handle = _HANDLES.pop(name, None)
    if handle is not None:
        ray.kill(handle)


def lookup(name: str) -> Any:
    """The actor's handle; raises ValueError when no such actor is alive."""
    if name not in _HANDLES:
        _HANDLES[name] = ray.get_actor(name)
    return _HANDLES[name]


def forget(name: str) -> None:
    """Drop a cached handle that stopped answering (its actor went with a restarted driver)."""
    _HANDLES.pop(name, None)
