"""How the train split is cut into batches: shuffled every epoch (seeded by train.seed and the epoch, so a resumed
run sees the same order), each DDP rank taking its share of every step's global batch.

With `train.group_by_length`, rows of similar length are batched together (transformers'
DistributedLengthGroupedSampler, what `Trainer(group_by_length=True)` uses: shuffled, then sorted by length within
mega-batches of 50 batches), so that a batch of short instructions is not padded to its one long row. Batches stay
random in which rows they hold; only their lengths are alike. Reports carry `padding_share`, the share of the
tokens trained on that were padding, either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from raytune_llm.core import process_cache
from raytune_llm.schema import TrainConfig


def train_loader(train_ds: Any, cfg: TrainConfig, world: int, rank: int, collate: Callable[..., Any],
                 data_path: str) -> torch.utils.data.DataLoader:
    sampler: torch.utils.data.DistributedSampler
    if cfg.group_by_length:
        from transformers.trainer_pt_utils import DistributedLengthGroupedSampler

        lengths = process_cache.shared("lengths", data_path, lambda: [len(ids) for ids in train_ds["input_ids"]])
        sampler = DistributedLengthGroupedSampler(cfg.batch_size // world, num_replicas=world, rank=rank,
                                                  seed=cfg.seed, drop_last=True, lengths=lengths)
    else:
        sampler = torch.utils.data.DistributedSampler(train_ds, world, rank, shuffle=True, seed=cfg.seed,
                                                      drop_last=True)
    return torch.utils.data.DataLoader(train_ds, batch_size=cfg.batch_size // world, sampler=sampler,
                                       collate_fn=collate, drop_last=True)


def padding(batch: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(padding tokens, all tokens) of a batch."""
    mask = batch.get("attention_mask")
    if mask is None:
        return 0, 0
    return int(mask.numel() - mask.sum()), int(mask.numel())
