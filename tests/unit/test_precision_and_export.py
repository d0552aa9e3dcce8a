"""Weights are trained in fp32 whatever dtype a checkpoint was stored in, and exports stand alone: a decoder
classifier saved in bf16 without a pad token trains, exports, and reloads in a fresh process for a batch of
several rows; an exported adapter names the base model the user gave."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from raytune_llm.config.loading import validate_dict
from raytune_llm.results.export import predict, write_model
from raytune_llm.runs.prepare import prepare_run
from raytune_llm.schema import TrainConfig
from raytune_llm.search.driver import train_template
from raytune_llm.training.bare import BareSession
from raytune_llm.training.loop import run

RELOAD = """
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
folder = sys.argv[1]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
enc = tok(["a wonderful, moving film that I loved", "dull"], padding=True, return_tensors="pt")
with torch.no_grad():
    print(json.dumps(model(**enc).logits.argmax(-1).tolist()))
"""


@pytest.fixture(scope="module")
def bf16_llama(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama as hub LLMs ship: weights stored in bf16, no pad token in the model config."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    out = tmp_path_factory.mktemp("bf16-llama")
    model = LlamaForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    model.config.pad_token_id = None
    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(out)
    return out


def _search_inputs(model: Path, data: Path, tmp_path: Path, method: str) -> tuple:
    cfg = validate_dict({
        "model": {"name": str(model), "max_length": 16},
        "data": {"source": str(data), "labels": ["neg", "pos"]},
        "train": {"max_steps": 4, "eval_every": 2, "batch_size": 8, "optimizer": {"lr": 1e-3},
                  "peft": {"method": method}},
        "stability": {"chance_level": {"enabled": False}},
        "run": {"name": f"bf16-{method}", "storage_path": str(tmp_path / "runs")},
    })
    _, info = prepare_run(cfg)  # what `search` does before any trial: no Ray involved
    return cfg, info


def test_a_bf16_decoder_without_pad_token_trains_in_fp32_and_exports_for_batches(
        bf16_llama: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    cfg, info = _search_inputs(bf16_llama, sentiment_dir, tmp_path, "full")
    session = BareSession(tmp_path / "ckpt")
    last = run(train_template(cfg, info), session)
    assert last["trainable_dtype"] == "float32" and last["autocast"] == "off"  # AdamW never updates bf16 weights
    out = tmp_path / "export"
    model = write_model(info, cfg.train.peft.method, session.checkpoints[-1], out, merge=True)
    _, preds = predict(model, info, TrainConfig.model_validate(cfg.train.model_dump()), "eval")
    assert preds == json.loads((session.checkpoints[-1] / "eval_predictions.json").read_text())
    assert json.loads((out / "model" / "config.json").read_text())["pad_token_id"] is not None
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(out / "model")], capture_output=True, text=True,
                          timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads(proc.stdout.strip().splitlines()[-1])) == 2  # a padded batch of two rows


def test_peft_keeps_a_bf16_base_only_where_asked_and_trains_its_adapter_in_fp32(bf16_llama: Path) -> None:
    import torch

    from raytune_llm.models.build import build_model, weight_dtypes

    lora = TrainConfig.model_validate({"peft": {"method": "lora"}})
    on_gpu = build_model(str(bf16_llama), ["neg", "pos"], lora, str(bf16_llama), pad_token_id=0,
                         frozen_dtype=torch.bfloat16)
    assert weight_dtypes(on_gpu) == {"trainable_dtype": "float32", "frozen_dtype": "bfloat16"}
    on_cpu = build_model(str(bf16_llama), ["neg", "pos"], lora, str(bf16_llama), pad_token_id=0)
    assert weight_dtypes(on_cpu) == {"trainable_dtype": "float32", "frozen_dtype": "float32"}
    full = build_model(str(bf16_llama), ["neg", "pos"], TrainConfig(), str(bf16_llama), pad_token_id=0,
                       frozen_dtype=torch.bfloat16)
    assert weight_dtypes(full)["trainable_dtype"] == "float32"  # nothing is frozen: nothing stays bf16


def test_an_exported_adapter_names_the_users_base_model(bf16_llama: Path, sentiment_dir: Path,
                                                        tmp_path: Path) -> None:
    cfg, info = _search_inputs(bf16_llama, sentiment_dir, tmp_path, "lora")
    session = BareSession(tmp_path / "ckpt")
    run(train_template(cfg, info), session)
    write_model(info, cfg.train.peft.method, session.checkpoints[-1], tmp_path / "export", merge=False)
    adapter = json.loads((tmp_path / "export" / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(bf16_llama.resolve())


def test_revision_and_trust_remote_code_reach_every_load(tiny_bert: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from raytune_llm.models.build import build_model, preflight
    from raytune_llm.models.pretrained import hub_kwargs

    seen: list[tuple[str, dict]] = []
    for cls in (AutoModelForSequenceClassification, AutoConfig):
        original = cls.from_pretrained.__func__

        def spy(klass: type, path: str, *args: object, _original: object = original, **kwargs: object) -> object:
            seen.append((klass.__name__, {k: kwargs.get(k) for k in ("revision", "trust_remote_code")}))
            return _original(klass, path, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    hub = hub_kwargs("v1.0", True)
    dropout = TrainConfig.model_validate({"dropout": {"hidden": 0.2}, "peft": {"method": "lora"}})
    build_model(str(tiny_bert), ["neg", "pos"], dropout, str(tiny_bert), pad_token_id=0, **hub)
    preflight(str(tiny_bert), ["neg", "pos"], [dropout], str(tiny_bert), **hub)
    assert {name for name, _ in seen} == {"AutoModelForSequenceClassification", "AutoConfig"}
    assert all(kw == {"revision": "v1.0", "trust_remote_code": True} for _, kw in seen), seen


def test_the_export_check_runs_on_the_kind_of_device_the_trial_trained_on(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from raytune_llm.results.export import check_device
    from raytune_llm.schema import ResourcesConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert check_device(ResourcesConfig(gpus_per_worker=1)) == "cuda"
    assert check_device(ResourcesConfig(gpus_per_worker=0.25)) == "cuda"
    assert check_device(ResourcesConfig(gpus_per_worker=0)) == "cpu"  # a CPU trial is checked on a CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check_device(ResourcesConfig(gpus_per_worker=1)) == "cpu"  # exported on a machine without a GPU
