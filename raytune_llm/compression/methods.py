"""The compression methods: each makes a variant of a fine-tuned model that plain transformers loads.

- `int8`: torchao's dynamic int8 activations x int8 weights on every linear layer, saved through transformers'
  TorchAoConfig (safetensors), so `from_pretrained` rebuilds it with torchao installed. Measured on a 2-core x86
  CPU (MiniLM, batch 1, 128 tokens): 0.8x the fp32 model's speed in eager mode, 2.7x once `torch.compile`d;
  torch's own `quantize_dynamic` is faster in eager mode but deprecated and not loadable by transformers.
- `prune-heads`: attention heads ranked by Michel et al.'s (2019) importance (the gradient of the eval loss
  with respect to a gate on each head's output, summed over the rows, normalised per layer), the least
  important `ratio` of them pruned globally (at least one per layer kept). transformers 5 removed
  `prune_heads` and a BERT config cannot state fewer heads per layer, so a pruned head's weights are zeroed in
  place (its query/key/value units and its columns of the output projection): the model's predictions are the
  pruned model's, its size and dense speed the original's.
- `prune-magnitude`: the smallest `ratio` of the transformer layers' linear weights by magnitude, globally
  (torch.nn.utils.prune, made permanent); embeddings and the head are kept.
- `distill`: a student trained on the teacher's soft targets; by default the teacher's architecture with
  `layers` of its layers, every other one (DistilBERT's initialisation: embeddings, those layers and the head
  copied). Training it is the training loop's (raytune_llm.training.distillation).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raytune_llm.core.errors import UserError

METHODS = ("int8", "prune-heads", "prune-magnitude", "distill")
DISTILLABLE = ("sequence_classification", "token_classification", "regression")


def refusal(method: str, task: str, model: Any) -> str:
    """Why `method` does not apply to this task and model ("" when it does)."""
    if method not in METHODS:
        return f"unknown method {method!r}; choose from {', '.join(METHODS)}"
    if method == "prune-heads" and not list(attention_blocks(model)):
        return (f"prune-heads: no attention blocks found in {type(model).__name__} (BERT-style query/key/value + "
                "output.dense, or q_proj/k_proj/v_proj/o_proj)")
    if method == "distill":
        if task not in DISTILLABLE:
            return (f"distill: the soft-target loss is built for {', '.join(DISTILLABLE)}; a {task} model's "
                    "targets are generated tokens (sequence-level distillation is not built)")
        if _num_layers(model.config) < 2:
            return "distill: the model has one layer; there is no smaller student of its architecture"
    return ""


# ---------------------------------------------------------------- int8 quantisation


# int8 schemes by name: the torchao config each quantises a model's linear layers with. `dynamic` (the default)
# quantises activations per batch too, so its matmuls can run in int8; `weight-only` keeps activations in float
# and stores int8 weights (the smaller change to the model's numbers, the smaller speed gain on a CPU).
SCHEMES = {"dynamic": "Int8DynamicActivationInt8WeightConfig", "weight-only": "Int8WeightOnlyConfig"}


def quantise_int8(model_dir: Path, out: Path, task: str, scheme: str = "dynamic") -> None:
    """The fp32 model in `model_dir` quantised by `scheme` (SCHEMES) and saved to `out`."""
    import importlib.util
    import logging

    if importlib.util.find_spec("torchao") is None:
        raise UserError("int8: needs torchao: pip install torchao")
    # torchao tries its CUDA kernels' libraries at import and logs each one a CPU-only wheel cannot load
    logging.getLogger("torchao").setLevel(logging.ERROR)
    import torchao.quantization
    from transformers import TorchAoConfig

    from raytune_llm.tasks import get_task

    model = get_task(task).auto_class().from_pretrained(
        str(model_dir), quantization_config=TorchAoConfig(getattr(torchao.quantization, SCHEMES[scheme])()),
        device_map="cpu")
    model.save_pretrained(str(out), safe_serialization=True)


# ---------------------------------------------------------------- attention heads


@dataclass
class AttentionBlock:
    q: Any
    k: Any
    v: Any
    o: Any
    heads: int
    kv_heads: int
    head_dim: int


def attention_blocks(model: Any) -> Iterator[AttentionBlock]:
    """Every self-attention block, in layer order: BERT-style (`query`, `key`, `value`; the parent's
    `output.dense`) or Llama-style (`q_proj`, `k_proj`, `v_proj`, `o_proj`)."""
    config = getattr(model, "config", None)
    if config is None or not getattr(config, "num_attention_heads", None):
        return
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    for name, module in model.named_modules():
        if all(hasattr(module, a) for a in ("q_proj", "k_proj", "v_proj", "o_proj")):
            yield AttentionBlock(module.q_proj, module.k_proj, module.v_proj, module.o_proj, heads, kv_heads, head_dim)
        elif all(hasattr(module, a) for a in ("query", "key", "value")):
            parent = model.get_submodule(name.rpartition(".")[0])
            output = getattr(getattr(parent, "output", None), "dense", None)
            if output is not None:
                yield AttentionBlock(module.query, module.key, module.value, output, heads, heads, head_dim)


def head_importance(model: Any, batches: list[dict[str, Any]], task: Any) -> list[list[float]]:
    """Michel et al.'s head importance: |d loss / d gate| per head, summed over the batches, each layer's scores
    divided by their L2 norm. A gate (1.0) multiplies each head's slice of the output projection's input."""
    import torch

    blocks = list(attention_blocks(model))
    gates = [torch.ones(b.heads, requires_grad=True) for b in blocks]
    hooks = []
    for block, gate in zip(blocks, gates):
        def gated(_module: Any, args: tuple, block: AttentionBlock = block, gate: Any = gate) -> tuple:
            x = args[0]
            shaped = x.view(*x.shape[:-1], block.heads, block.head_dim) * gate.to(x.dtype)[:, None]
            return (shaped.view(x.shape), *args[1:])
        hooks.append(block.o.register_forward_pre_hook(gated))
    scores = torch.zeros(len(blocks), blocks[0].heads if blocks else 0)
    model.eval()
    try:
        for batch in batches:
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            task.loss(logits, batch["labels"], 0.0).backward()
            for i, gate in enumerate(gates):
                scores[i] += gate.grad.abs()
                gate.grad = None
    finally:
        for h in hooks:
            h.remove()
        model.zero_grad(set_to_none=True)
    scores = scores / scores.norm(dim=1, keepdim=True).clamp_min(1e-20)
    return scores.tolist()


def heads_to_prune(importance: list[list[float]], ratio: float) -> dict[int, list[int]]:
    """The least important `ratio` of all heads, ranked globally, keeping each layer's most important head."""
    ranked = sorted((score, layer, head) for layer, row in enumerate(importance) for head, score in enumerate(row))
    want = round(ratio * len(ranked))
    pruned: dict[int, list[int]] = {}
    for _, layer, head in ranked:
        if sum(map(len, pruned.values())) >= want:
            break
        if len(pruned.get(layer, [])) < len(importance[layer]) - 1:
            pruned.setdefault(layer, []).append(head)
    return {layer: sorted(heads) for layer, heads in sorted(pruned.items())}


def zero_heads(model: Any, pruned: dict[int, list[int]]) -> None:
    """Remove the heads' contribution: their columns of the output projection and their query rows; key and value
    rows too where no remaining query head reads them (grouped-query attention shares them)."""
    import torch

    blocks = list(attention_blocks(model))
    with torch.no_grad():
        for layer, heads in pruned.items():
            b = blocks[layer]
            group = b.heads // b.kv_heads
            for h in heads:
                cols = slice(h * b.head_dim, (h + 1) * b.head_dim)
                b.o.weight[:, cols] = 0
                b.q.weight[cols] = 0
                if b.q.bias is not None:
                    b.q.bias[cols] = 0
            for kv in range(b.kv_heads):
                if all(h in heads for h in range(kv * group, (kv + 1) * group)):
                    rows = slice(kv * b.head_dim, (kv + 1) * b.head_dim)
                    for lin in (b.k, b.v):
                        lin.weight[rows] = 0
                        if lin.bias is not None:
                            lin.bias[rows] = 0


# ---------------------------------------------------------------- magnitude


def prune_magnitude(model: Any, ratio: float) -> int:
    """Zero the smallest `ratio` of the transformer layers' linear weights (global L1); returns how many."""
    import torch
    from torch.nn.utils import prune

    from raytune_llm.training.levers import layer_of

    targets = [(m, "weight") for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and (layer := layer_of(name)) is not None and layer >= 0]
    if not targets:
        raise UserError("prune-magnitude: no linear layers inside the model's transformer layers")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=ratio)
    for module, name in targets:
        prune.remove(module, name)
    return sum(int((m.weight == 0).sum()) for m, _ in targets)


# ---------------------------------------------------------------- distillation's student

_LAYER_KEY = re.compile(r"(\.(?:layer|layers|h|block)\.)(\d+)(\.)")


def _num_layers(config: Any) -> int:
    return int(getattr(config, "num_hidden_layers", 0) or 0)


def kept_layers(total: int, layers: int) -> list[int]:
    """Which teacher layers a `layers`-deep student starts from: evenly spaced from the bottom, every other one
    at half depth (DistilBERT)."""
    if not 1 <= layers < total:
        raise UserError(f"--student-layers {layers}: between 1 and {total - 1} (the teacher has {total})")
    return [i * total // layers for i in range(layers)]


def student_from_teacher(teacher: Any, layers: int, task: str) -> Any:
    """The teacher's architecture `layers` deep, initialised from its embeddings, every other layer and its head."""
    import copy

    from raytune_llm.tasks import get_task

    config = copy.deepcopy(teacher.config)
    keep = kept_layers(_num_layers(config), layers)
    config.num_hidden_layers = layers
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[i] for i in keep]
    student = get_task(task).auto_class().from_config(config)
    moved = {}
    for key, value in teacher.state_dict().items():
        match = _LAYER_KEY.search(key)
        if match is None:
            moved[key] = value
        elif int(match.group(2)) in keep:
            new = keep.index(int(match.group(2)))
            moved[key[: match.start()] + f"{match.group(1)}{new}{match.group(3)}" + key[match.end():]] = value
    missing, unexpected = student.load_state_dict(moved, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise UserError(f"distill: cannot copy the teacher's layers into the student ({type(teacher).__name__}: "
                        f"{len(missing)} missing, {len(unexpected)} unexpected keys); name a student with --student")
    return student
