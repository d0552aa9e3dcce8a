"""Knowledge distillation inside the training loop (Hinton et al. 2015): the student's loss is
`alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * task loss`, the soft targets being the teacher's
logits softened by the temperature T (the T^2 keeps their gradients on the scale of the hard loss's). For a
regression head the soft target is the teacher's prediction (mean squared error; T does not apply).

The teacher is frozen and held on the worker's device in eval mode; every micro-batch, DDP rank and precision
setting sees its logits for the same rows as the student's, so accumulation, DDP and autocast work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

# The tasks whose logits are a distribution over classes per row (or per token), or one value per row.
CLASS_LOGITS = ("sequence_classification", "token_classification")
VALUE_LOGITS = ("regression",)
DISTILLABLE = CLASS_LOGITS + VALUE_LOGITS
IGNORE_INDEX = -100  # token classification: sub-word and padding positions carry no label


@dataclass
class Teacher:
    model: torch.nn.Module
    temperature: float
    alpha: float


def load_teacher(path: str, task: str, device: torch.device, temperature: float, alpha: float) -> Teacher:
    """The fine-tuned teacher (a folder transformers loads), frozen, in eval mode on `device`."""
    from raytune_llm.tasks import get_task

    model = get_task(task).auto_class().from_pretrained(path, dtype=torch.float32)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Teacher(model, temperature, alpha)


def soft_target_loss(task: str, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
                     temperature: float) -> torch.Tensor:
    """The soft-target term, a mean over the rows (tokens: the labelled ones) as the task's own loss is."""
    student, teacher = student.float(), teacher.float()
    if task in VALUE_LOGITS:
        return F.mse_loss(student.squeeze(-1), teacher.squeeze(-1))
    classes = student.shape[-1]
    s, t = student.reshape(-1, classes), teacher.reshape(-1, classes)
    if task == "token_classification":
        keep = labels.reshape(-1) != IGNORE_INDEX
        s, t = s[keep], t[keep]
        if s.shape[0] == 0:
            return student.sum() * 0.0
    log_s = F.log_softmax(s / temperature, dim=-1)
    log_t = F.log_softmax(t / temperature, dim=-1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * temperature**2


def distilled_loss(teacher: Teacher, task: str, inputs: dict[str, Any], student_logits: torch.Tensor,
                   labels: torch.Tensor, hard: torch.Tensor, autocast: dict[str, Any]) -> torch.Tensor:
    """`alpha` soft + `1 - alpha` hard, the teacher's logits made under the student's autocast."""
    with torch.no_grad(), torch.autocast(**autocast):
        teacher_logits = teacher.model(**inputs).logits
    soft = soft_target_loss(task, student_logits, teacher_logits, labels, teacher.temperature)
    return teacher.alpha * soft + (1.0 - teacher.alpha) * hard
