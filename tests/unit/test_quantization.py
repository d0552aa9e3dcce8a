"""train.peft.quantization on a machine without CUDA or bitsandbytes: validate says what is missing, a worker
refuses in one line, and the memory estimate counts the base in 4 bits. (The GPU path itself:
benchmarks/gpu_large_models.py.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from raytune_llm.config import experiment_problems
from raytune_llm.core.errors import UserError
from raytune_llm.models.build import build_model, preflight
from raytune_llm.schema import ExperimentConfig, TrainConfig
from raytune_llm.training.memory import estimate

QLORA = {"method": "lora", "quantization": {"bits": 4}}


def _problems(tiny_bert: Path, sentiment_dir: Path, **parts: object) -> list[str]:
    cfg = ExperimentConfig.model_validate({"model": {"name": str(tiny_bert)}, "data": {"source": str(sentiment_dir)},
                                           **parts})
    return [f"{p.path}: {p.message}" for p in experiment_problems(cfg)]


def test_validate_names_every_missing_piece(tiny_bert: Path, sentiment_dir: Path) -> None:
    problems = _problems(tiny_bert, sentiment_dir, train={"peft": QLORA}, resources={"num_workers": 1})
    assert ("train.peft.quantization: bitsandbytes' 4-/8-bit weights run on CUDA GPUs; set "
            "resources.gpus_per_worker, or remove the quantization") in problems
    if importlib.util.find_spec("bitsandbytes") is None:
        assert ("train.peft.quantization: needs bitsandbytes, which is not installed: pip install "
                "'raytune-llm[quant]'") in problems
    space = {"peft.method": {"type": "categorical", "choices": ["full", "lora"]}}
    problems = _problems(tiny_bert, sentiment_dir, train={"peft": QLORA}, search={"space": space},
                         resources={"num_workers": 1, "gpus_per_worker": 1})
    assert any(p.startswith("search.space.peft.method: full fine-tuning trains the weights "
                            "train.peft.quantization freezes in 4 bits") for p in problems)


def test_a_worker_without_cuda_refuses_in_one_line(tiny_bert: Path) -> None:
    train = TrainConfig.model_validate({"peft": QLORA})
    with pytest.raises(UserError, match=r"^train\.peft\.quantization: bitsandbytes' 4-/8-bit weights run on CUDA"):
        build_model(str(tiny_bert), ["neg", "pos"], train, str(tiny_bert))


def test_the_estimate_counts_the_base_in_4_bits(tiny_bert: Path) -> None:
    lora, qlora = TrainConfig.model_validate({"peft": {"method": "lora"}}), TrainConfig.model_validate({"peft": QLORA})
    (model,) = preflight(str(tiny_bert), ["neg", "pos"], [lora], str(tiny_bert))
    plain, quant = estimate(model, lora, 4, 16, half=True), estimate(model, qlora, 4, 16, half=True)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert plain.weights - quant.weights == pytest.approx(frozen * (2 - 0.516), rel=1e-3)
    assert quant.gradients == plain.gradients and quant.optimizer == plain.optimizer
