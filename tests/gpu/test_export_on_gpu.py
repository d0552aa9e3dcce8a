"""Checks that need a GPU (skipped without CUDA; CI has none). On the device machine:
`source .devkit/setup.sh && HF_HUB_OFFLINE=1 python -m pytest -q tests/gpu`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_a_bf16_gpu_trial_is_checked_on_the_gpu_and_its_predictions_reproduce(
        tiny_llama: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    from raytune_llm.config.loading import validate_dict
    from raytune_llm.results.export import check_device, predict, write_model
    from raytune_llm.runs.prepare import prepare_run
    from raytune_llm.schema import TrainConfig
    from raytune_llm.search.driver import train_template
    from raytune_llm.training.bare import BareSession
    from raytune_llm.training.loop import run

    cfg = validate_dict({
        "model": {"name": str(tiny_llama), "max_length": 16},
        "data": {"source": str(sentiment_dir), "labels": ["neg", "pos"]},
        "train": {"max_steps": 4, "eval_every": 2, "batch_size": 8, "optimizer": {"lr": 1e-3}},
        "stability": {"chance_level": {"enabled": False}},
        "resources": {"gpus_per_worker": 1},
        "run": {"name": "gpu-export", "storage_path": str(tmp_path / "runs")},
    })
    _, info = prepare_run(cfg)
    session = BareSession(tmp_path / "ckpt", device="cuda")
    last = run(train_template(cfg, info), session)
    assert last["autocast"] == "bf16" and last["trainable_dtype"] == "float32"
    assert check_device(cfg.resources) == "cuda"
    model = write_model(info, cfg.train.peft.method, session.checkpoints[-1], tmp_path / "export", merge=True)
    _, preds = predict(model, info, TrainConfig.model_validate(cfg.train.model_dump()), "eval")
    assert next(model.parameters()).device.type == "cuda"
    assert preds == json.loads((session.checkpoints[-1] / "eval_predictions.json").read_text())
