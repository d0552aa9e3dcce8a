"""Shared fixtures: a tiny BERT built here (no download) and a small real dataset folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

POSITIVE = ["a wonderful, moving film", "great acting and a clever plot", "I loved every minute",
            "brilliant and funny", "a joy to watch", "superb direction, beautiful score"]
NEGATIVE = ["a dull, lifeless mess", "boring and far too long", "I hated every minute",
            "clumsy and unfunny", "a chore to sit through", "awful script, wooden acting"]


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with random weights and the real MiniLM WordPiece tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from raytune_llm.builtins import minilm

    out = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm()))
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertForSequenceClassification(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def sentiment_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train/validation/test Parquet files with string labels, built from short reviews."""
    import pandas as pd

    out = tmp_path_factory.mktemp("sentiment")
    rows = [{"text": t, "label": "pos"} for t in POSITIVE] + [{"text": t, "label": "neg"} for t in NEGATIVE]
    train = pd.DataFrame(rows * 8).sample(frac=1.0, random_state=0)
    train.to_parquet(out / "train.parquet", index=False)
    pd.DataFrame(rows).to_parquet(out / "validation.parquet")
    pd.DataFrame(rows[::-1]).to_parquet(out / "test.parquet")
    return out


def tiny_experiment(model: Path, data: Path, storage: Path, **overrides: object) -> dict:
    """A small experiment dict: 2 labels, 16-token inputs, a few steps."""
    cfg: dict = {
        "model": {"name": str(model), "max_length": 16},
        "data": {"source": str(data), "labels": ["neg", "pos"]},
        "train": {"max_steps": 8, "eval_every": 2, "batch_size": 8, "eval_batch_size": 16},
        "search": {"metric": "eval_loss", "mode": "min", "num_trials": 2},
        "stability": {"chance_level": {"enabled": False}},  # a tiny random model sits at chance for a while
        "resources": {"num_workers": 1},
        "run": {"name": "t", "storage_path": str(storage)},
    }
    for path, value in overrides.items():
        node = cfg
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return cfg
