"""train.group_by_length: far less padding, every row still seen once an epoch, the same order again on resume,
and the ranks of a DDP trial sharing each global batch."""

from __future__ import annotations

import random
from pathlib import Path

import datasets
import pytest

from raytune_llm.runs.layout import RunInfo
from raytune_llm.schema import TrainConfig
from raytune_llm.tasks import get_task
from raytune_llm.training.bare import BareSession
from raytune_llm.training.batching import padding, train_loader
from raytune_llm.training.loop import run
from tests.unit.conftest import spec_for


@pytest.fixture(scope="module")
def varied(tiny_bert: Path) -> tuple[datasets.Dataset, object]:
    from transformers import AutoTokenizer

    rng = random.Random(0)
    lengths = [rng.choice([4, 6, 8, 60, 120]) for _ in range(400)]  # mostly short rows, some long: instruction data
    ds = datasets.Dataset.from_dict({"input_ids": [[101] + [1000 + i % 50] * (n - 2) + [102] for i, n in
                                                   enumerate(lengths)],
                                     "attention_mask": [[1] * n for n in lengths], "labels": [i % 2 for i in
                                                                                                range(400)]})
    return ds, get_task("sequence_classification").collator(AutoTokenizer.from_pretrained(str(tiny_bert)))


def _epoch(ds: datasets.Dataset, collate: object, grouped: bool, world: int = 1, rank: int = 0,
           epoch: int = 0) -> tuple[list[list[int]], float]:
    cfg = TrainConfig(batch_size=16, group_by_length=grouped, seed=3)
    loader = train_loader(ds.add_column("row", list(range(len(ds)))), cfg, world, rank, collate, f"varied-{grouped}")
    loader.sampler.set_epoch(epoch)
    rows, pads, tokens = [], 0, 0
    for batch in loader:
        p, t = padding(batch)
        pads, tokens = pads + p, tokens + t
        rows.append([int(x) for x in batch["row"]])
    return rows, pads / tokens


def test_grouping_cuts_padding_and_still_sees_every_row(varied: tuple) -> None:
    ds, collate = varied
    _, plain_share = _epoch(ds, collate, grouped=False)
    rows, share = _epoch(ds, collate, grouped=True)
    assert plain_share > 0.5 and share < plain_share / 2  # most of a random batch was padding
    assert sorted(r for b in rows for r in b) == list(range(400))  # 400 = 25 batches of 16: nothing dropped
    assert _epoch(ds, collate, grouped=True)[0] == rows  # seeded: a resumed run sees the same order
    assert _epoch(ds, collate, grouped=True, epoch=1)[0] != rows  # and each epoch a new one


def test_the_ranks_share_each_global_batch(varied: tuple) -> None:
    ds, collate = varied
    ranks = [_epoch(ds, collate, grouped=True, world=2, rank=r)[0] for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 25  # per rank 8 rows a step
    seen = [set(a) | set(b) for a, b in zip(*ranks, strict=True)]
    assert all(not set(a) & set(b) for a, b in zip(*ranks, strict=True))
    assert sorted(r for step in seen for r in step) == list(range(400))


def test_the_loop_reports_its_padding(info: RunInfo) -> None:
    session = BareSession(None, device="cpu")
    last = run(spec_for(info, group_by_length=True, optimizer={"lr": 1e-3}), session)
    assert last["step"] == 6 and 0.0 <= last["padding_share"] < 1.0
