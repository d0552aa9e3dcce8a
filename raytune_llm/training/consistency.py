"""`train.consistency`: R-Drop (Liang et al. 2021). Each row goes through the model twice in one forward pass (the
batch stacked on itself, as the authors' code does, so that DDP, accumulation and autocast see one ordinary
forward), dropout making the two passes differ; the loss is the two passes' mean task loss plus alpha times the
symmetric KL between their predicted distributions:

    loss = (L(p1) + L(p2)) / 2 + alpha * (KL(p1 || p2) + KL(p2 || p1)) / 2

KL per row (token tasks: per labelled token), averaged; regression: the squared difference of the two outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

IGNORE = -100


def doubled(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch stacked on itself: rows 0..n-1 and n..2n-1 are the same rows."""
    return {k: torch.cat([v, v]) for k, v in inputs.items()}


def symmetric_kl(a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor, token_level: bool) -> torch.Tensor:
    """(KL(p_a || p_b) + KL(p_b || p_a)) / 2 of the softmax over the last dim, averaged over rows (token level:
    over the labelled tokens)."""
    la, lb = F.log_softmax(a.float(), dim=-1), F.log_softmax(b.float(), dim=-1)
    per = 0.5 * ((la.exp() * (la - lb)).sum(-1) + (lb.exp() * (lb - la)).sum(-1))
    if token_level:
        keep = labels != IGNORE
        return (per * keep).sum() / keep.sum().clamp(min=1)
    return per.mean()


def rdrop_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float,
               task_loss: Callable[[torch.Tensor], torch.Tensor], regression: bool, token_level: bool
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The R-Drop loss of a doubled batch's logits, and the first pass's logits (what the row predicted)."""
    a, b = logits.chunk(2)
    base = 0.5 * (task_loss(a) + task_loss(b))
    gap = F.mse_loss(a.float(), b.float()) if regression else symmetric_kl(a, b, labels, token_level)
    return base + alpha * gap, a
