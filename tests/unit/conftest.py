"""Fixtures for the Ray-free tests: a prepared tiny dataset and run specs for the bare training loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from raytune_llm.runs.layout import RunInfo
from raytune_llm.runs.tokenise import tokenise
from raytune_llm.schema import DataConfig, ModelConfig, TrainConfig
from raytune_llm.training.spec import RunSpec


@pytest.fixture(scope="session")
def info(tiny_bert: Path, sentiment_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RunInfo:
    out = tmp_path_factory.mktemp("prepared") / "data"
    cfg = DataConfig(source=str(sentiment_dir), labels=["neg", "pos"])
    p = tokenise(cfg, ModelConfig(name="x", max_length=16), str(tiny_bert), out, seed=0)
    config = {"model": {"name": str(tiny_bert), "max_length": 16}, "data": cfg.model_dump(mode="json")}
    return RunInfo(config=config, model_path=str(tiny_bert), tokenizer_path=str(tiny_bert), data_path=str(p.path),
                   label_names=p.label_names, sizes=p.sizes, chance_value=p.chance_value)


NO_CHANCE_CHECK = {"chance_level": {"enabled": False}}  # a tiny random model sits at chance for a while


def spec_for(info: RunInfo, stability: dict | None = None, **train: object) -> RunSpec:
    cfg = TrainConfig.model_validate({"max_steps": 6, "eval_every": 3, "batch_size": 8, **train})
    return RunSpec(model_path=info.model_path, tokenizer_path=info.tokenizer_path, data_path=info.data_path,
                   label_names=info.label_names, train=cfg.model_dump(mode="json"),
                   stability=NO_CHANCE_CHECK if stability is None else stability)


