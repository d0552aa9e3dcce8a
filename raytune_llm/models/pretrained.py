"""The user's pretrained model as the task loads it: one place for what every `from_pretrained` of it gets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def hub_kwargs(revision: str | None = None, trust_remote_code: bool = False) -> dict[str, Any]:
    """What every from_pretrained of the user's model gets: the revision they pinned, and their word on remote code
    (a local folder ignores the revision)."""
    return {"revision": revision, "trust_remote_code": trust_remote_code}


def half_dtype(name: str) -> torch.dtype:
    """The torch dtype of a half-precision setting (`bf16`, `fp16`): for autocast and for a quantised base's compute."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}[name]


def load_pretrained(task: str, model_path: str, label_names: list[str], dtype: Any = None,
                    **kwargs: Any) -> torch.nn.Module:
    """The task's model class loaded from `model_path`, with a head for `label_names`."""
    import torch

    from raytune_llm.tasks import get_task

    t = get_task(task)
    return t.auto_class().from_pretrained(
        model_path,
        **t.model_kwargs(label_names),
        # A checkpoint that already has a head for another label count gets a new head, not an error.
        ignore_mismatched_sizes=True,
        # transformers 5 keeps a checkpoint's stored dtype by default (bf16 for most hub LLMs): choose it on purpose.
        dtype=dtype or torch.float32,
        **kwargs,
    )
