"""Sharded training (`resources.strategy: fsdp`): PyTorch FSDP2 (`fully_shard`) over a trial's DDP workers, for full
fine-tuning of models whose weights, gradients and AdamW state do not fit one device.

Each transformer layer is a shard unit (its parameters gathered just for its forward and backward), then the rest
of the model. Checkpoints gather the full model and optimizer state (every rank takes part; rank 0 writes), so a
checkpoint is an ordinary `save_pretrained` folder that export, resume and a different worker count all read; a
restored run loads the full state and shards it again. Evaluation runs the same number of forward passes on every
rank (FSDP's all-gathers need them all), with the surplus discarded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch.distributed.tensor import DTensor

FULL = {"full_state_dict": True, "cpu_offload": True}


def layer_stack(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer's repeated layers: the longest ModuleList of one module class."""
    best: list[torch.nn.Module] = []
    for m in model.modules():
        if isinstance(m, torch.nn.ModuleList) and len(m) > len(best) and len({type(c) for c in m}) == 1:
            best = list(m)
    return best


def shard(model: torch.nn.Module) -> torch.nn.Module:
    """Shard `model` in place over the default process group; returns it (it is its own wrapper)."""
    from torch.distributed.fsdp import fully_shard

    for layer in layer_stack(model):
        fully_shard(layer)
    fully_shard(model)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    return any(isinstance(p, DTensor) for p in model.parameters())


def no_sync(module: torch.nn.Module) -> Any:
    """A context in which backward accumulates gradients without synchronising them across workers: DDP's
    `no_sync`, FSDP2's `set_requires_gradient_sync(False)`; nothing to do in one process."""
    if hasattr(module, "no_sync"):
        return module.no_sync()
    if hasattr(module, "set_requires_gradient_sync"):
        return _fsdp_no_sync(module)
    return nullcontext()


@contextmanager
def _fsdp_no_sync(module: Any) -> Iterator[None]:
    module.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """The whole model's and optimizer's state on CPU (a collective: every rank calls it; rank 0 gets the tensors)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(**FULL)
    return get_model_state_dict(model, options=options), get_optimizer_state_dict(model, optimizer, options=options)


def load_full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, model_state: dict,
                    optimizer_state: dict) -> None:
    """Shard a full state into the run (every rank read the same files)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_state, options=options)
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
