"""A search on a cloud URI: the tracking files written on the driver's disk go to the run folder when it ends."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ray.tune import Callback

from raytune_llm.core import storage

logger = logging.getLogger(__name__)


class UploadTracking(Callback):
    def __init__(self, local: str, run_root: str) -> None:
        self.local, self.run_root = local, run_root

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if Path(self.local).is_dir():
            storage.upload(Path(self.local), self.run_root)
            logger.info("tracking files uploaded from %s to %s", self.local, self.run_root)
