"""Compression on a GPU (skipped without CUDA; CI has none): the GPU timing columns `compress` adds when a GPU is
present, for a float model and its int8 variants (a variant torchao cannot move to CUDA is reported as not timed,
never a crash). On the device machine: `source .devkit/setup.sh && python -m pytest -q -s tests/gpu`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_each_variant_is_timed_on_the_gpu_as_well(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    from raytune_llm.compression.measure import gpu_timing, time_models
    from raytune_llm.compression.methods import quantise_int8
    from raytune_llm.search.compress import Settings

    torch.manual_seed(0)  # MiniLM-L6's shape, random weights (no hub on the device machine)
    BertForSequenceClassification(BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                             intermediate_size=1536, num_labels=5)).save_pretrained(tmp_path / "fp32")
    models = {"original": AutoModelForSequenceClassification.from_pretrained(tmp_path / "fp32").eval()}
    for scheme in ("dynamic", "weight-only"):
        quantise_int8(tmp_path / "fp32", tmp_path / scheme, "sequence_classification", scheme)
        models[f"int8-{scheme}"] = AutoModelForSequenceClassification.from_pretrained(tmp_path / scheme).eval()
    ids = torch.randint(1000, 20000, (64, 128))
    singles = [{"input_ids": ids[i:i + 1], "attention_mask": torch.ones(1, 128, dtype=torch.long)} for i in range(64)]
    batches = [{"input_ids": ids[i:i + 32], "attention_mask": torch.ones(32, 128, dtype=torch.long)}
               for i in (0, 32)]
    s = Settings(rounds=3)
    gpu = gpu_timing(models, singles, batches, s)
    cpu = time_models(models, singles[:8], batches[:1], 1, 1)
    print(json.dumps({"gpu": gpu, "cpu_8_rows": cpu, "device": torch.cuda.get_device_name()}, indent=2))
    assert set(gpu) == set(models)
    assert gpu["original"]["latency_ms_median"] > 0 and gpu["original"]["throughput_rows_s"] > 0
    assert all(next(m.parameters()).device.type == "cpu" for m in models.values())  # moved back
