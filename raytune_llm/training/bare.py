"""Run the training loop in this process, without Ray: for benchmarks, tests and debugging."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch


class BareSession:
    """A one-worker Session that keeps reports in memory and checkpoints under `out`."""

    rank = 0
    world_size = 1
    node_id = "local"

    def __init__(self, out: Path | None = None, device: str | None = None, restore: Path | None = None) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.out = out
        self.restore = restore
        self.reports: list[dict[str, Any]] = []
        self.checkpoints: list[Path] = []

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir is not None and self.out is not None:
            dest = self.out / f"checkpoint_{len(self.reports):06d}"
            shutil.copytree(checkpoint_dir, dest)
            self.checkpoints.append(dest)

    def restore_dir(self) -> Path | None:
        return self.restore

    def peers_learnt(self, board: str, fraction: float, above_chance: bool) -> bool | None:
        return None  # a bare run has no population
