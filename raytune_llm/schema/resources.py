"""The `resources:` section: what a trial runs on, and where it trains (raytune_llm.executors)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from raytune_llm.core.strict import Strict


class ResourcesConfig(Strict):
    num_workers: int = Field(1, ge=1, description="DDP workers per trial")
    cpus_per_worker: float = Field(1, gt=0)
    gpus_per_worker: float = Field(0, ge=0)
    driver_cpus: float = Field(0.1, gt=0, description="CPU share of the trial's Tune driver")
    torch_threads: int | None = Field(1, ge=1, description="torch threads per worker; null = torch default")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="how a trial's workers are placed on nodes (Ray placement group strategy)")
    start_timeout_s: float | None = Field(
        900, gt=0, description="how long a trial may wait for its workers' resources (asking again every 30 s) "
        "before it errors; null = for as long as the search runs")
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="how a multi-worker trial splits the work: ddp replicates the model on every worker, "
        "fsdp shards weights, gradients and optimizer state over them (full fine-tuning of large models)")
    memory_check: Literal["error", "warn", "off"] = Field(
        "error", description="before a search: a PEFT variant whose estimated memory per worker exceeds what a "
        "worker has is an error (warn: a warning)")
    executor: Literal["auto", "tune", "train"] = Field(
        "auto", description="where a trial trains: tune = inside its Tune trial's process, which is reused for the "
        "next trial (one worker; fast start); train = a Ray Train DDP job of num_workers processes; auto = tune for "
        "one worker, train for more")

    @property
    def in_process(self) -> bool:
        """Whether a trial trains in its Tune trial's own process (raytune_llm.executors.inprocess)."""
        return self.executor == "tune" or (self.executor == "auto" and self.num_workers == 1)

    @property
    def trial_cpus(self) -> float:
        """CPUs one trial holds: its one process, or its workers plus the Tune driver that waits for them."""
        if self.in_process:
            return self.cpus_per_worker
        return self.num_workers * self.cpus_per_worker + self.driver_cpus

    @property
    def trial_gpus(self) -> float:
        return self.num_workers * self.gpus_per_worker

