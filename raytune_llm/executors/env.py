"""What every Ray process of a search is started with, and how long one attempt to place a trial's workers waits.
Set through the runtime env at `ray.init` (raytune_llm.search.driver.connect)."""

from __future__ import annotations

import os

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
