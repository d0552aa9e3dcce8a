"""A training step's peak memory per worker, estimated before a search starts, for each PEFT method it can sample.

    weights      trainable parameters in fp32; a PEFT method's frozen base in the autocast dtype (fp32 without), or
                 in 4/8 bits plus its quantisation constants (train.peft.quantization); under FSDP a worker's
                 shard (weights, gradients, optimizer state over num_workers) plus the gathered weights of one
                 layer and of the root unit (embeddings, head)
    gradients    fp32, trainable parameters only
    optimizer    AdamW's two fp32 moments per trainable parameter
    activations  what autograd keeps for backward at the largest micro-batch and the longest sequence, measured
                 by running the model's forward pass on the meta device (no memory, no compute) under autograd's
                 saved-tensor hooks: exact for the architecture at hand (SwiGLU, a vocabulary-sized head) rather
                 than a rule of thumb, with attention counted as the fused kernel it runs as, and a storage
                 saved twice (a layer input kept by its q, k and v projections) counted once. Plus TRANSIENT for
                 what lives only during backward (gradients of activations, temporaries). Under bf16/fp16
                 autocast most activations are half the size (halved here: the meta device has no autocast).
                 With gradient checkpointing: each layer's input instead of what the layer keeps (attributed to
                 the layers by forward hooks), plus one layer's recomputed in backward.

Against the measured peak of a CPU process training BERT shapes from 256x4 to 768x2 at 64-512 tokens, the
estimate came to 81-111% (tests/unit/test_memory.py asserts 70-130% for the two largest). Weights, gradients and
optimizer state are exact counts; the activations carry the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from raytune_llm.core.errors import UserError
from raytune_llm.schema import ExperimentConfig, PeftMethod, TrainConfig
from raytune_llm.schema.space import batch_values
from raytune_llm.training.sharding import layer_stack

TRANSIENT = 0.25
GIB = 1024**3


@dataclass
class Estimate:
    method: str
    weights: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def parts(self) -> str:
        return (f"weights {self.weights / GIB:.2f}, gradients {self.gradients / GIB:.2f}, optimizer "
                f"{self.optimizer / GIB:.2f}, activations {self.activations / GIB:.2f} GiB")


class _FusedAttention(torch.autograd.Function):
    """What a fused attention kernel (flash / memory-efficient, which PyTorch's SDPA picks for training on GPU and
    CPU) keeps for backward: q, k, v, the output and a log-sum-exp per query, not the seq x seq probabilities.
    On the meta device SDPA would take its math path, which keeps those: a multi-GiB overestimate at long
    sequences."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = q.new_empty((*q.shape[:-1], v.shape[-1]))
        ctx.save_for_backward(q, k, v, out, q.new_empty(q.shape[:-1], dtype=torch.float32))
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # never run: the estimate does not call backward
        raise NotImplementedError


class _AsFused(TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.nn.functional.scaled_dot_product_attention:
            return _FusedAttention.apply(*args[:3])
        return func(*args, **(kwargs or {}))


def _saved_bytes(model: torch.nn.Module, rows: int, seq_len: int, vocab: int) -> tuple[int, list[int]]:
    """Bytes autograd keeps for backward in one forward pass: in all, and inside each of the repeated layers."""
    storages: dict[int, int] = {}
    weights = {p.untyped_storage()._cdata for p in model.parameters()}  # a matmul keeps its weight: counted apart
    layers = layer_stack(model)
    per_layer, inside = [0] * len(layers), [-1]

    def pack(t: torch.Tensor) -> torch.Tensor:
        # By storage: a layer's input saved by its q, k and v projections (or a tensor and its view) is kept once.
        storage = t.untyped_storage()
        if storage._cdata not in weights and storage._cdata not in storages:
            storages[storage._cdata] = storage.nbytes()
            if inside[0] >= 0:
                per_layer[inside[0]] += storage.nbytes()
        return t

    hooks = []
    for i, layer in enumerate(layers):
        hooks.append(layer.register_forward_pre_hook(lambda *_, i=i: inside.__setitem__(0, i)))
        hooks.append(layer.register_forward_hook(lambda *_: inside.__setitem__(0, -1)))
    model.train()
    # No attention mask: building one reads its values (`.item()`), which the meta device has none of; a full
    # mask costs the same memory as none.
    ids = torch.zeros(rows, seq_len, dtype=torch.long, device="meta").clamp_(max=vocab - 1)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), _AsFused():
            logits = model(input_ids=ids).logits
            logits.float().logsumexp(-1).mean()  # the loss keeps fp32 logits (and their softmax) like cross-entropy
    finally:
        for h in hooks:
            h.remove()
    return sum(storages.values()), per_layer


def estimate(model: torch.nn.Module, train: TrainConfig, rows: int, seq_len: int, half: bool,
             shards: int = 1) -> Estimate:
    """The estimate for a model built on the meta device (PEFT-wrapped where the method is not full). `shards`:
    the workers FSDP spreads weights, gradients and optimizer state over (each also gathers one layer's weights
    at a time)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    peft = train.peft.method != PeftMethod.full
    config = model.config
    acts, per_layer = _saved_bytes(model, rows, seq_len, int(getattr(config, "vocab_size", 2)))
    if train.gradient_checkpointing and per_layer:
        # Checkpointing keeps each layer's input (fp32 residual stream) instead of its insides, and recomputes one
        # layer's insides at a time in backward.
        hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0) or config.d_model)
        acts = acts - sum(per_layer) + len(per_layer) * rows * seq_len * hidden * 4 + max(per_layer)
    acts = int(acts * (0.5 if half else 1.0) * (1 + TRANSIENT))
    frozen_bytes = 4.0
    if peft and train.peft.quantization is not None:  # double quantisation: ~0.127 bit/param of constants
        frozen_bytes = train.peft.quantization.bits / 8 + (0.016 if train.peft.quantization.double_quant else 0.0625)
    elif peft and half:
        frozen_bytes = 2.0
    weights = trainable * 4 + frozen * frozen_bytes
    gathered = 0.0
    if shards > 1:  # a layer's weights are gathered while it runs, the root unit's (embeddings, head) likewise
        layers = [sum(p.numel() for p in layer.parameters()) for layer in layer_stack(model)] or [0]
        gathered = 4.0 * (trainable + frozen - sum(layers) + max(layers))
    return Estimate(train.peft.method.value, weights=int(weights / shards + gathered),
                    gradients=trainable * 4 // shards, optimizer=trainable * 8 // shards, activations=acts)


def available(gpus_per_worker: float, concurrent: int) -> tuple[int, str] | None:
    """What one worker can use here: its share of this machine's GPU, or of its RAM when trials run on CPU
    (`concurrent` trials at once). None where this machine cannot tell (a GPU trial, no GPU here)."""
    if gpus_per_worker > 0:
        if not torch.cuda.is_available():
            return None
        total = torch.cuda.get_device_properties(0).total_memory
        share = min(gpus_per_worker, 1.0)
        label = f"{total / GIB:.0f} GiB GPU" if share == 1 else f"{share:g} of a {total / GIB:.0f} GiB GPU"
        return int(total * share), label
    import os

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return ram // max(concurrent, 1), f"{ram / GIB:.0f} GiB RAM shared by {concurrent} trial(s)"


ADVICE = ("lower train.micro_batch_size (gradient accumulation keeps the batch), set train.gradient_checkpointing: "
          "true, use precision: bf16 (or fp16), a PEFT method, or a smaller model.max_length")


def check(estimates: list[Estimate], room: tuple[int, str] | None, policy: str, adaptive: bool) -> list[str]:
    """Lines to print; raises UserError when a variant cannot fit and `policy` is `error` (never for
    micro_batch_size: auto, which halves the micro-batch on out-of-memory)."""
    if policy == "off" or not estimates:
        return []
    shown = ", ".join(f"{e.method} {e.total / GIB:.2f} GiB" for e in estimates)
    lines = [f"memory per worker, estimated: {shown}" + (f" (a worker has {room[0] / GIB:.1f} GiB: {room[1]})"
                                                          if room else "")]
    if room is None:
        return lines
    over = [e for e in estimates if e.total > room[0]]
    for e in over:
        message = (f"resources.memory_check: peft.method {e.method} needs about {e.total / GIB:.1f} GiB per worker "
                   f"({e.parts()}), more than the {room[0] / GIB:.1f} GiB a worker has ({room[1]}); {ADVICE}; "
                   "or set resources.memory_check: warn")
        if policy == "error" and not adaptive:
            raise UserError(message)
        lines.append("warning: " + message.removeprefix("resources.memory_check: "))
    return lines


def plan(cfg: ExperimentConfig, trains: list[TrainConfig], models: list[torch.nn.Module], local: bool) -> list[str]:
    """Estimate every PEFT variant of the search (built on the meta device by models.build.preflight) against what a
    worker has; the lines to print. Raises UserError when one cannot fit (resources.memory_check: error)."""
    import os

    from raytune_llm.training.precision import resolve

    res = cfg.resources
    if res.memory_check == "off":
        return []
    share = max(batch_values(cfg)) // res.num_workers
    micro = cfg.train.micro_batch_size
    searched = cfg.search.space.get("micro_batch_size")
    choices = [c for c in getattr(searched, "choices", []) if isinstance(c, int) and not isinstance(c, bool)]
    if choices and len(choices) == len(searched.choices):  # a searched micro-batch: its largest
        micro = max(choices)
    rows = min(micro, share) if isinstance(micro, int) else share
    if res.gpus_per_worker > 0 and not torch.cuda.is_available():  # planned on a machine without the GPU
        half = cfg.train.precision != "fp32"
    else:
        half = resolve(cfg.train.precision, torch.device("cuda" if res.gpus_per_worker > 0 else "cpu")) != "fp32"
    try:
        shards = res.num_workers if res.strategy == "fsdp" else 1
        estimates = [estimate(m, t, rows, cfg.model.max_length, half, shards)
                     for t, m in zip(trains, models, strict=True)]
    except Exception as exc:  # an architecture whose forward pass needs real values: say so, do not guess
        return [f"memory per worker: not estimated ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"]
    concurrent = cfg.search.max_concurrent_trials or max(1, int((os.cpu_count() or 1) // res.trial_cpus))
    room = available(res.gpus_per_worker, concurrent) if local or res.gpus_per_worker > 0 else None
    return check(estimates, room, res.memory_check, micro == "auto")
