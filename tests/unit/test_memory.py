"""The memory estimate (raytune_llm.training.memory): within 30% of a process's measured peak for two model sizes; what
each setting saves; the check a search runs before it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from raytune_llm.core.errors import UserError
from raytune_llm.models.build import preflight
from raytune_llm.schema import ExperimentConfig, TrainConfig
from raytune_llm.training.memory import GIB, Estimate, check, estimate

# One process: a random-init BERT of the given shape trains three AdamW steps; its peak resident memory above what
# it held with the model built is the training's own (gradients, optimizer, activations), plus the weights. The
# peak is Linux's VmHWM, reset just before training (clear_refs 5), so that the imports' own peak cannot hide it.
MEASURE = """
import json, sys, torch
from transformers import BertConfig, BertForSequenceClassification
torch.set_num_threads(1)
hidden, layers, rows, seq = map(int, sys.argv[1:5])
cfg = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // 64,
                 intermediate_size=4 * hidden, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
model = BertForSequenceClassification(cfg).train()
ids, labels = torch.randint(0, cfg.vocab_size, (rows, seq)), torch.randint(0, 2, (rows,))
opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
def status(key):
    return int(next(line for line in open("/proc/self/status") if line.startswith(key)).split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS:")
for _ in range(3):
    model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
after = status("VmHWM:")
weights = sum(p.numel() * 4 for p in model.parameters())
print(json.dumps({"peak": after - before + weights}))
"""


def _meta_bert(hidden: int, layers: int, train: TrainConfig) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // 64,
                     intermediate_size=4 * hidden, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with torch.device("meta"):
        return BertForSequenceClassification(cfg)


@pytest.mark.parametrize(("hidden", "layers", "rows", "seq"), [(512, 4, 16, 256), (384, 6, 8, 512)])
def test_the_estimate_is_within_30_percent_of_the_measured_peak(hidden: int, layers: int, rows: int,
                                                                seq: int) -> None:
    # One malloc arena: glibc's per-thread arenas hold freed memory unevenly, which made the peak vary by 40%.
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(hidden), str(layers), str(rows), str(seq)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "MALLOC_ARENA_MAX": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured = json.loads(proc.stdout.strip().splitlines()[-1])["peak"]
    estimated = estimate(_meta_bert(hidden, layers, TrainConfig()), TrainConfig(), rows, seq, half=False).total
    assert 0.7 <= estimated / measured <= 1.3, (estimated / GIB, measured / GIB)


def test_what_each_setting_saves() -> None:
    plain = estimate(_meta_bert(256, 4, TrainConfig()), TrainConfig(), 16, 128, half=False)
    ckpt_train = TrainConfig(gradient_checkpointing=True)
    ckpt = estimate(_meta_bert(256, 4, ckpt_train), ckpt_train, 16, 128, half=False)
    assert ckpt.activations < 0.6 * plain.activations and ckpt.weights == plain.weights
    half_batch = estimate(_meta_bert(256, 4, TrainConfig()), TrainConfig(), 8, 128, half=False)
    assert half_batch.activations == pytest.approx(plain.activations / 2, rel=0.05)
    bf16 = estimate(_meta_bert(256, 4, TrainConfig()), TrainConfig(), 16, 128, half=True)
    assert bf16.activations == pytest.approx(plain.activations / 2, rel=0.01)
    assert bf16.weights == plain.weights  # full fine-tuning keeps fp32 weights under autocast


def test_peft_variants_and_a_decoder_are_estimated(tiny_llama: Path) -> None:
    full, lora = TrainConfig(), TrainConfig.model_validate({"peft": {"method": "lora"}})
    models = preflight(str(tiny_llama), ["neg", "pos"], [full, lora], str(tiny_llama), "causal_lm")
    a, b = (estimate(m, t, 4, 64, half=True) for m, t in zip(models, [full, lora], strict=True))
    assert b.optimizer < a.optimizer / 10 and b.gradients < a.gradients / 10  # LoRA trains a sliver
    assert b.weights < a.weights  # its frozen base is held in bf16
    assert a.activations > 4 * 64 * 32 * 4  # a decoder's activations, vocabulary-sized logits included


def test_a_search_that_cannot_fit_is_refused_with_the_settings_to_change() -> None:
    est = [Estimate("full", 2 * GIB, 2 * GIB, 4 * GIB, 10 * GIB), Estimate("lora", GIB, 0, 0, GIB)]
    room = (8 * GIB, "a 8 GiB GPU")
    with pytest.raises(UserError) as err:
        check(est, room, "error", adaptive=False)
    message = str(err.value)
    assert message.startswith("resources.memory_check: peft.method full needs about 18.0 GiB per worker")
    for setting in ("train.micro_batch_size", "train.gradient_checkpointing", "precision: bf16", "warn"):
        assert setting in message
    warned = check(est, room, "warn", adaptive=False)
    assert warned[0].startswith("memory per worker, estimated: full 18.00 GiB, lora 2.00 GiB")
    assert warned[1].startswith("warning: peft.method full needs about 18.0 GiB")
    assert check(est, room, "error", adaptive=True)[1].startswith("warning: ")  # auto halves its way down
    assert check(est, (64 * GIB, "x"), "error", adaptive=False) == [
        "memory per worker, estimated: full 18.00 GiB, lora 2.00 GiB (a worker has 64.0 GiB: x)"]
    assert check(est, room, "off", adaptive=False) == []


def test_memory_check_is_validated() -> None:
    with pytest.raises(ValueError, match="memory_check"):
        ExperimentConfig.model_validate({"model": {"name": "m"}, "data": {"source": "d"},
                                         "resources": {"memory_check": "maybe"}})


def test_a_search_plans_every_peft_variant(tiny_bert: Path, sentiment_dir: Path) -> None:
    from raytune_llm.runs.prepare import peft_variants
    from raytune_llm.training.memory import plan

    cfg = ExperimentConfig.model_validate({
        "model": {"name": str(tiny_bert), "max_length": 32}, "data": {"source": str(sentiment_dir)},
        "search": {"space": {"peft.method": {"type": "categorical", "choices": ["full", "lora"]},
                             "batch_size": {"type": "categorical", "choices": [8, 32]}}}})
    variants = peft_variants(cfg)
    models = preflight(str(tiny_bert), ["neg", "pos"], variants, str(tiny_bert))
    (line,) = plan(cfg, variants, models, local=True)
    assert line.startswith("memory per worker, estimated: full ") and ", lora " in line and "GiB RAM" in line
    small = cfg.model_copy(update={"search": cfg.search.model_copy(update={"space": {}})})
    assert estimate(models[0], variants[0], 32, 32, False).total > estimate(models[0], variants[0], 8, 32, False).total
    off = cfg.model_copy(update={"resources": cfg.resources.model_copy(update={"memory_check": "off"})})
    assert plan(off, variants, models, local=True) == [] and plan(small, variants, models, local=True)


def test_fsdp_divides_the_states_over_the_workers() -> None:
    one = estimate(_meta_bert(256, 4, TrainConfig()), TrainConfig(), 8, 64, half=False)
    four = estimate(_meta_bert(256, 4, TrainConfig()), TrainConfig(), 8, 64, half=False, shards=4)
    assert four.optimizer == one.optimizer // 4 and four.gradients == one.gradients // 4
    # Each worker also holds one layer's and the root unit's weights whole while they run (a small BERT's
    # embeddings are most of its weights), so the saving is in the gradients and optimizer state here.
    assert four.weights > one.weights / 4 and four.activations == one.activations
    assert four.total - four.activations < (one.total - one.activations) / 2
