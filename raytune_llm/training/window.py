"""What the training steps since the last report add up to: the report's training metrics and its step trace."""

from __future__ import annotations

from typing import Any

import torch

from raytune_llm.training.accumulation import sum_over_workers
from raytune_llm.training.batching import padding


def _short(value: float) -> float:
    return float(f"{value:.5g}")  # 5 significant digits: plenty for a trace, a third of the JSON


class StepWindow:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.loss = self.grad_norm = self.grad_norm_max = self.seconds = 0.0
        self.steps = self.samples = self.padding = self.tokens = 0
        # Every step's loss and pre-clipping gradient norm, the ones the guard stops included: what the step
        # detectors saw, kept in the report so that a guard verdict can be checked (and replayed) after the fact.
        self.step_losses: list[float] = []
        self.step_grad_norms: list[float] = []

    def saw(self, loss: float, grad_norm: float) -> None:
        self.step_losses.append(_short(loss))
        self.step_grad_norms.append(_short(grad_norm))

    def applied(self, loss: float, grad_norm: float, batch: dict[str, torch.Tensor], seconds: float) -> None:
        """A step whose update was applied."""
        self.loss += loss
        self.grad_norm += grad_norm
        self.grad_norm_max = max(self.grad_norm_max, grad_norm)
        self.steps += 1
        self.samples += len(batch["labels"])
        pads, tokens = padding(batch)
        self.padding += pads
        self.tokens += tokens
        self.seconds += seconds

    def trace(self) -> dict[str, list[float]]:
        return {"step_losses": self.step_losses, "step_grad_norms": self.step_grad_norms}

    def metrics(self, device: torch.device) -> dict[str, Any]:
        """Means over the applied steps; throughput and padding over all workers (a collective: every rank)."""
        n = self.steps
        return {
            "train_loss": self.loss / n,
            "grad_norm": self.grad_norm / n,
            "grad_norm_max": self.grad_norm_max,
            "samples_per_s": sum_over_workers(self.samples / max(self.seconds, 1e-9), device),
            "padding_share": sum_over_workers(self.padding, device) / max(sum_over_workers(self.tokens, device), 1),
        }
