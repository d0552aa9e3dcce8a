"""What the training steps since the last report add up to: the report's training metrics and its step trace."""

from __future__ import annotations

import math
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
        self.steps = self.samples = self.padding = self.tokens = self.normed = 0
        # Every step's loss and pre-clipping gradient norm, the ones the guard stops included: what the step
        # detectors saw, kept in the report so that a guard verdict can be checked (and replayed) after the fact.
        self.step_losses: list[float] = []
        self.step_grad_norms: list[float] = []

    def saw(self, loss: float, grad_norm: float) -> None:
        self.step_losses.append(_short(loss))
        self.step_grad_norms.append(_short(grad_norm))

    def applied(self, loss: float, grad_norm: float | None, batch: dict[str, torch.Tensor], seconds: float) -> None:
        """A step the loop went past: its update applied, or (`grad_norm` None) skipped by fp16's scaler for
        gradients that overflowed, which are no gradient norm of the run's (they stay in the step trace)."""
        self.loss += loss
        if grad_norm is not None:
            self.grad_norm += grad_norm
            self.grad_norm_max = max(self.grad_norm_max, grad_norm)
            self.normed += 1
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
            "grad_norm": self.grad_norm / self.normed if self.normed else math.nan,  # every update skipped
            "grad_norm_max": self.grad_norm_max if self.normed else math.nan,
            "samples_per_s": sum_over_workers(self.samples / max(self.seconds, 1e-9), device),
            "padding_share": sum_over_workers(self.padding, device) / max(sum_over_workers(self.tokens, device), 1),
        }
