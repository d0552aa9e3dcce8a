"""Pruned weights stay pruned while a pruned model trains on (a recovery fine-tune): the gradient of every weight
that is exactly zero when training starts is masked to zero. Under AdamW such a weight then never moves: its
moments stay zero, so its update is 0 / (0 + eps), and decoupled weight decay scales zero to zero. A trained
dense weight is never exactly zero, so the zeros are the pruning mask.

Only linear layers are held (their weights, and the bias entries of rows whose weights are all zero: a pruned
head's query, key and value units); embeddings, norms and the rest train as before.
"""

from __future__ import annotations

from typing import Any

import torch


def hold_zeros(model: torch.nn.Module) -> list[Any]:
    """Mask the gradients of the zero weights of every linear layer; returns the hook handles."""
    handles = []
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        weight_mask = module.weight.detach() != 0
        if bool(weight_mask.all()):
            continue
        handles.append(module.weight.register_hook(lambda g, m=weight_mask: g * m.to(g.dtype)))
        if module.bias is not None:
            dead_rows = ~weight_mask.any(dim=1)
            if bool(dead_rows.any()):
                bias_mask = ~dead_rows
                handles.append(module.bias.register_hook(lambda g, m=bias_mask: g * m.to(g.dtype)))
    return handles


def zero_fraction(model: torch.nn.Module) -> float:
    """The share of the linear layers' weights that are zero."""
    zeros = total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            zeros += int((module.weight == 0).sum())
            total += module.weight.numel()
    return zeros / total if total else 0.0
