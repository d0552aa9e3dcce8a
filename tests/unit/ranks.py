"""Two-process gloo jobs without Ray, for the training loop under DDP and FSDP."""

from __future__ import annotations

import multiprocessing as mp
import socket
from collections.abc import Callable
from typing import Any


def spawn_two(target: Callable[..., None], *args: Any, timeout: float = 240) -> None:
    """Run target(rank, port, *args) in two spawned processes; fail if one hangs (a rank left in a collective) or
    exits non-zero."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=(rank, port, *args)) for rank in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=timeout)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "a rank hung in a collective"
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
