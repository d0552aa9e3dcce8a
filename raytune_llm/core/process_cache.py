"""What a process that runs trial after trial (the in-process executor) keeps between them.

Only what no trial changes: the tokenizer, the memory-mapped data, and the pretrained weights as loaded (on CPU).
Keeping the tokenizer and the data costs nothing. Keeping the weights costs a CPU copy of the model, so only a
process that will run further trials keeps them (`keep_weights()`, called by the in-process executor): a Ray Train
worker runs one trial and ends.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Callable, Hashable
from typing import Any

# The pretrained model kept between trials, at most this large (its parameters, MB): a copy stays in CPU memory.
WEIGHTS_LIMIT_MB = float(os.environ.get("RAYTUNE_LLM_WEIGHT_CACHE_MB", "4096"))

_objects: dict[tuple[str, Hashable], Any] = {}
_weights: dict[str, Any] = {}  # one entry: {"key": ..., "model": ..., "rng_after": ...}
hits: list[str] = []  # what the current trial found cached (reported in its start-up figures)
_keep_weights = False


def keep_weights() -> None:
    """This process runs trial after trial: keep the pretrained weights between them."""
    global _keep_weights
    _keep_weights = True


def new_trial() -> None:
    hits.clear()


def shared(kind: str, key: Hashable, build: Callable[[], Any]) -> Any:
    """The object `build` makes for `key`, made once per process. Only for objects no trial modifies."""
    if (kind, key) in _objects:
        hits.append(kind)
    else:
        _objects[kind, key] = build()
    return _objects[kind, key]


def pretrained(key: Hashable, load: Callable[[], Any]) -> Any:
    """A fresh copy of the model `load` returns, exactly as `load` would make it now: same weights (including
    any newly initialised head) and the same random state afterwards. A head is initialised from torch's global
    random state, so that state at entry is part of the key, and the state `load` left behind is restored."""
    import torch

    full_key = (key, hashlib.sha1(torch.get_rng_state().numpy().tobytes()).hexdigest())
    if _weights.get("key") == full_key:
        hits.append("weights")
        torch.set_rng_state(_weights["rng_after"])
        return copy.deepcopy(_weights["model"])
    _weights.clear()
    model = load()
    if not _keep_weights:
        return model
    size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    if size_mb <= WEIGHTS_LIMIT_MB:
        _weights.update(key=full_key, model=copy.deepcopy(model), rng_after=torch.get_rng_state())
    return model


def clear() -> None:
    global _keep_weights
    _keep_weights = False
    _objects.clear()
    _weights.clear()
    hits.clear()
