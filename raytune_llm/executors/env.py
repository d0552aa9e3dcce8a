"""What every Ray process of a search is started with, and how long one attempt to place a trial's workers waits
(set through the runtime env at `ray.init`: raytune_llm.search.driver.connect); where a run's history of
evaluations is kept and how it is read. Light: no Ray, no torch."""

from __future__ import annotations

import json
import os
from typing import Any

from raytune_llm.core import storage

# How long one attempt to place a trial's workers waits before Train asks again (a fresh placement group). Trials
# that could never be placed are refused up front; the rest wait for a running trial to end, and ended trials
# give their resources back at once (raytune_llm.actors.placement), so a wait is short unless another job holds them.
START_ATTEMPT_S = 30

# Seen by every Ray worker process (set through the runtime env at ray.init).
WORKER_ENV = {
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",  # cuts worker-group start-up by seconds per trial
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": str(START_ATTEMPT_S),
    # One process fewer per Train trial. Preemption notices come from cloud spot nodes: a search on them sets
    # RAY_TRAIN_ENABLE_PREEMPTION_WATCHER=1 in its own environment.
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": os.environ.get("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0"),
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


HISTORY_FILE = "history.jsonl"  # every evaluation of a Train run or a refit, one JSON line each


def history_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a history line keeps of a report: its values, not its step traces."""
    return {k: v for k, v in metrics.items() if not isinstance(v, list)}


def last_report(history: str) -> dict[str, Any]:
    """A run's last report from its history (Train's result has only the latest checkpoint's, not a later
    failure report's; none when no report carried a checkpoint)."""
    lines = storage.read_text(history).splitlines()
    return json.loads(lines[-1]) if lines else {}
