"""Mixed precision: which autocast a run gets (`train.precision`), and fp16's loss scaling.

- fp32: no autocast.
- bf16: bf16 autocast; weights that train stay fp32 (AdamW loses most small updates on bf16 weights).
- fp16: fp16 autocast with a gradient scaler (torch.amp.GradScaler): GPUs without bf16 (V100, T4). The scaler
  skips a step whose gradients overflowed and lowers its scale; that is fp16 working as meant, not a failing
  trial. Gradients that overflow step after step while the scale keeps falling are not an fp16 artefact: the
  run is diverging, and it ends as `non_finite` like any other.
- auto: bf16 on a GPU that supports it, fp32 elsewhere (fp16 is never chosen for you: it needs the scaler's
  cooperation and fails in ways bf16 does not).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from raytune_llm.models.pretrained import half_dtype

# Consecutive overflowing steps before an fp16 run counts as diverged: by then GradScaler has halved its scale this
# many times (65536 -> 2^-4), far below any scale a healthy run's gradients need.
OVERFLOW_PATIENCE = 20


def resolve(precision: str, device: torch.device) -> str:
    """fp32, bf16 or fp16: what `precision` means on this device."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def autocast_for(precision: str, device: torch.device) -> dict[str, Any]:
    """torch.autocast arguments for `precision` on this device."""
    mode = resolve(precision, device)
    return {"device_type": device.type, "dtype": half_dtype("fp16" if mode == "fp16" else "bf16"),
            "enabled": mode != "fp32"}


class LossScaler:
    """fp16's GradScaler around backward and the optimizer step; passes everything through otherwise."""

    def __init__(self, mode: str, device: torch.device) -> None:
        self.scaler = torch.amp.GradScaler(device.type) if mode == "fp16" else None
        self.skipped = 0  # steps skipped for overflowing gradients, in all
        self.in_a_row = 0

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(loss) if self.scaler else loss

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Before clipping and the guard: they see the true gradients."""
        if self.scaler:
            self.scaler.unscale_(optimizer)

    def skips(self, loss: float, grad_norm: float) -> bool:
        """Whether the scaler will skip this step: fp16, a finite loss, gradients that overflowed. A non-finite
        loss is no scaling artefact (the forward pass itself failed): it is left to the guard."""
        skip = self.scaler is not None and math.isfinite(loss) and not math.isfinite(grad_norm)
        self.skipped += skip
        self.in_a_row = self.in_a_row + 1 if skip else 0
        return skip

    @property
    def overflow_persists(self) -> bool:
        return self.in_a_row >= OVERFLOW_PATIENCE

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler:
            self.scaler.step(optimizer)  # skipped when unscale_ found inf/NaN gradients
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of fp16's scaling: the scale (a resumed run starting again at 65536 would skip
        its first steps once more) and the steps skipped so far."""
        if not self.scaler:
            return {}
        return {"scaler": self.scaler.state_dict(), "skipped": self.skipped, "in_a_row": self.in_a_row}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler and state:
            self.scaler.load_state_dict(state["scaler"])
            self.skipped, self.in_a_row = state["skipped"], state["in_a_row"]

    def report(self) -> dict[str, float]:
        if not self.scaler:
            return {}
        return {"fp16_skipped_steps": self.skipped, "loss_scale": float(self.scaler.get_scale())}
