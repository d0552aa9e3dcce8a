"""Stability levers for fine-tuning, each off by default and searchable like any training setting.

Layer-wise lr decay and re-initialising the top layers (Zhang et al. 2021, "Revisiting few-sample BERT
fine-tuning"), L2-SP (Li et al. 2018), freezing and gradual unfreezing (Howard & Ruder 2018), FGM adversarial
training (Miyato et al. 2017). Layers are found by parameter name (`...layer.3.`, `...layers.3.`), which
covers BERT-, RoBERTa- and Llama-style models, with or without a PEFT wrapper.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from raytune_llm.schema import TrainConfig

_LAYER = re.compile(r"\.(?:layer|layers|h|block)\.(\d+)(?:\.|$)")
EMBEDDINGS = -1


def layer_of(name: str) -> int | None:
    """Transformer layer index of a parameter/module name; -1 for embeddings; None for the head and the rest."""
    if match := _LAYER.search(name):
        return int(match.group(1))
    if "embed" in name:
        return EMBEDDINGS
    return None


def num_layers(model: torch.nn.Module) -> int:
    indices = [i for n, _ in model.named_parameters() if (i := layer_of(n)) is not None]
    return max(indices, default=-1) + 1


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: no decay for biases and norms; with layer-wise lr decay, lr x decay^(layers above)."""
    total = num_layers(model)
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        scale = 1.0
        if cfg.layerwise_lr_decay is not None and (layer := layer_of(name)) is not None:
            scale = cfg.layerwise_lr_decay ** (total - layer)  # embeddings sit one below layer 0
        no_decay = p.ndim < 2 or "norm" in name.lower()
        groups.setdefault((scale, no_decay), []).append(p)
    decay = cfg.optimizer.weight_decay
    return [
        {"params": params, "lr": cfg.optimizer.lr * scale, "weight_decay": 0.0 if no_decay else decay}
        for (scale, no_decay), params in sorted(groups.items(), key=lambda kv: kv[0])
    ]


def reinit_top_layers(model: torch.nn.Module, n: int) -> None:
    """Re-initialise the top `n` transformer layers with the model's own initialiser."""
    if n == 0:
        return
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    total = num_layers(model)
    if n > total:
        raise ValueError(f"train.reinit_top_layers={n}, but the model has {total} layers")
    for name, module in base.named_modules():
        if re.search(r"(?:^|\.)(?:layer|layers|h|block)\.(\d+)$", name) and layer_of(name) >= total - n:
            # transformers' initialisers skip tensors flagged as loaded from the checkpoint: clear the flags.
            for tensor in [*module.parameters(), *module.buffers()]:
                tensor._is_hf_initialized = False
            for sub in module.modules():
                sub._is_hf_initialized = False
            module.apply(base._init_weights)


class L2SP:
    """Penalty `weight * ||w - w0||^2` over the trainable pretrained body parameters: not the new head, and not
    the top `reinit_top` layers, which were re-initialised (their starting point is noise, not knowledge)."""

    def __init__(self, model: torch.nn.Module, weight: float, reinit_top: int = 0) -> None:
        self.weight = weight
        total = num_layers(model)
        self.anchors = [
            (p, p.detach().clone()) for n, p in model.named_parameters()
            if weight > 0 and p.requires_grad and (layer := layer_of(n)) is not None and layer < total - reinit_top
        ]

    def penalty(self) -> torch.Tensor | float:
        if not self.anchors:
            return 0.0
        return self.weight * sum(((p - w0) ** 2).sum() for p, w0 in self.anchors)


class Freezer:
    """Keeps the embeddings and the bottom layers frozen; optionally unfreezes layers one by one, top down.

    Frozen parameters still take part in DDP's backward; their gradients are dropped (set to None) before the
    optimizer step, so AdamW neither moves them nor decays them.
    """

    def __init__(self, model: torch.nn.Module, bottom: int, unfreeze_every: int | None) -> None:
        self.total = num_layers(model)
        self.bottom, self.every = bottom, unfreeze_every
        self.by_layer: dict[int, list[torch.nn.Parameter]] = {}
        for name, p in model.named_parameters():
            if p.requires_grad and (layer := layer_of(name)) is not None:
                self.by_layer.setdefault(layer, []).append(p)
        self.active = bottom > 0 or unfreeze_every is not None

    def frozen_below(self, step: int) -> int:
        """Layers with an index below this are frozen (the embeddings, index -1, whenever it is > -1). Gradual
        unfreezing starts with everything frozen and ends at the floor: the embeddings too, unless
        freeze_bottom_layers keeps them (and the bottom layers) frozen for good."""
        if self.every is None:
            return self.bottom
        floor = self.bottom if self.bottom > 0 else EMBEDDINGS
        return max(floor, self.total - step // self.every)

    def drop_frozen_grads(self, step: int) -> None:
        if not self.active:
            return
        threshold = self.frozen_below(step)
        for layer, params in self.by_layer.items():
            if layer < threshold:
                for p in params:
                    p.grad = None


def fgm_backward(model: torch.nn.Module, epsilon: float, adversarial_loss: Callable[[], torch.Tensor]) -> None:
    """Perturb the embedding table along its gradient, add the adversarial loss's gradient, restore."""
    embeddings = model.get_input_embeddings().weight
    if embeddings.grad is None:
        raise ValueError("train.fgm_epsilon needs trainable input embeddings (full fine-tuning)")
    norm = embeddings.grad.norm()
    # The second backward runs on every rank whatever this rank's gradient looks like: under DDP it is the one
    # that all-reduces, and a rank that skipped it would leave the others waiting forever. A NaN gradient here
    # stays NaN after the all-reduce, so the guard stops all ranks together.
    usable = bool(torch.isfinite(norm)) and float(norm) > 0
    delta = epsilon * embeddings.grad / norm if usable else torch.zeros_like(embeddings)
    embeddings.data.add_(delta)
    adversarial_loss().backward()
    embeddings.data.sub_(delta)


def first_backward_context(ddp: torch.nn.Module, fgm: bool) -> AbstractContextManager[Any]:
    """With FGM, the first backward must not all-reduce yet: the second one syncs both."""
    return ddp.no_sync() if fgm and hasattr(ddp, "no_sync") else nullcontext()
