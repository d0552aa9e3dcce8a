"""Compression's parts that do not train: the soft-target loss against a reference computation, pruned weights
held at zero under AdamW, head importance and head pruning against a gate on each head, magnitude pruning, the
student's initialisation from every other teacher layer, and the refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from raytune_llm.compression.methods import (
    attention_blocks,
    head_importance,
    heads_to_prune,
    kept_layers,
    prune_magnitude,
    refusal,
    student_from_teacher,
    zero_heads,
)
from raytune_llm.core.errors import UserError
from raytune_llm.tasks import get_task
from raytune_llm.training.distillation import soft_target_loss
from raytune_llm.training.sparsity import hold_zeros, zero_fraction


def bert(layers: int = 4, heads: int = 4):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=layers,
                                                    num_attention_heads=heads, intermediate_size=64,
                                                    max_position_embeddings=32, num_labels=3)).eval()


def llama_gqa():
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    return LlamaForSequenceClassification(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64,
                                                      num_hidden_layers=2, num_attention_heads=4,
                                                      num_key_value_heads=2, num_labels=3, pad_token_id=0)).eval()


def batch(n: int = 6, length: int = 10) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {"input_ids": torch.randint(1, 100, (n, length)), "attention_mask": torch.ones(n, length, dtype=torch.long),
            "labels": torch.randint(0, 3, (n,))}


def logits(model, b):
    with torch.no_grad():
        return model(**{k: v for k, v in b.items() if k != "labels"}).logits


# ---------------------------------------------------------------- distillation's loss


def test_soft_target_loss_is_hintons_kl_times_t_squared():
    torch.manual_seed(0)
    s, t, T = torch.randn(5, 3), torch.randn(5, 3), 2.5
    p = F.softmax(t / T, dim=-1)
    reference = (p * (p.log() - F.log_softmax(s / T, dim=-1))).sum(-1).mean() * T**2
    got = soft_target_loss("sequence_classification", s, t, torch.zeros(5), T)
    assert torch.allclose(got, reference, atol=1e-6)
    assert float(soft_target_loss("sequence_classification", t, t, torch.zeros(5), T)) == pytest.approx(0, abs=1e-6)


def test_soft_target_loss_counts_only_labelled_tokens_and_regression_is_mse():
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    labels = torch.tensor([[0, -100, 1, 2], [-100, -100, 1, -100]])
    keep = labels.reshape(-1) != -100
    expected = soft_target_loss("sequence_classification", s.reshape(-1, 3)[keep], t.reshape(-1, 3)[keep],
                                torch.zeros(4), 1.0)
    assert torch.allclose(soft_target_loss("token_classification", s, t, labels, 1.0), expected)
    a, b = torch.randn(4, 1), torch.randn(4, 1)
    assert torch.allclose(soft_target_loss("regression", a, b, torch.zeros(4), 3.0), F.mse_loss(a, b))


# ---------------------------------------------------------------- pruned weights stay pruned


def test_zero_weights_stay_zero_under_adamw_with_weight_decay():
    model = bert(layers=1)
    zero_heads(model, {0: [1, 3]})
    prune_magnitude(model, 0.3)
    before = zero_fraction(model)
    dense = {n: p.detach().clone() for n, p in model.named_parameters()}
    hold_zeros(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        model.train()
        model(**batch()).loss.backward()
        opt.step()
        opt.zero_grad()
    assert zero_fraction(model) == pytest.approx(before)
    query = model.bert.encoder.layer[0].attention.self.query
    assert torch.all(query.bias[8:16] == 0)  # head 1's bias units (head size 8) stay pruned too
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, dense[n])]
    assert "classifier.weight" in moved and any("intermediate" in n for n in moved)


# ---------------------------------------------------------------- heads


@pytest.mark.parametrize("make", [bert, llama_gqa])
def test_zeroed_heads_equal_a_zero_gate_on_those_heads(make):
    model, b = make(), batch()
    blocks = list(attention_blocks(model))
    assert len(blocks) == model.config.num_hidden_layers
    pruned = {0: [0, 2], 1: [1]}
    gates = {i: torch.ones(blk.heads) for i, blk in enumerate(blocks)}
    for layer, heads in pruned.items():
        gates[layer][heads] = 0
    hooks = [blk.o.register_forward_pre_hook(
        lambda _m, a, blk=blk, g=gates[i]: ((a[0].view(*a[0].shape[:-1], blk.heads, blk.head_dim) * g[:, None])
                                            .view(a[0].shape), *a[1:])) for i, blk in enumerate(blocks)]
    gated = logits(model, b)
    for h in hooks:
        h.remove()
    zero_heads(model, pruned)
    assert torch.allclose(logits(model, b), gated, atol=1e-5)


def test_head_importance_is_zero_for_a_removed_head_and_the_ratio_is_global():
    model, b = bert(), batch()
    zero_heads(model, {2: [3]})
    scores = head_importance(model, [b], get_task("sequence_classification"))
    assert len(scores) == 4 and all(len(row) == 4 for row in scores)
    assert scores[2][3] == 0.0 and all(s > 0 for row in scores for i, s in enumerate(row) if row is not scores[2]
                                       or i != 3)
    pruned = heads_to_prune(scores, 0.5)
    assert sum(map(len, pruned.values())) == 8 and 3 in pruned[2]
    assert heads_to_prune([[0.1, 0.2], [0.3, 0.4]], 0.9) == {0: [0], 1: [0]}  # one head a layer always stays


def test_magnitude_pruning_zeroes_the_smallest_layer_weights_only():
    model = bert()
    embeddings = model.bert.embeddings.word_embeddings.weight.detach().clone()
    layer_weights = torch.cat([m.weight.detach().abs().flatten() for n, m in model.named_modules()
                               if isinstance(m, torch.nn.Linear) and ".layer." in n])
    threshold = layer_weights.kthvalue(int(0.4 * layer_weights.numel())).values
    zeroed = prune_magnitude(model, 0.4)
    assert zeroed == round(0.4 * layer_weights.numel())
    kept = torch.cat([m.weight.detach().flatten() for n, m in model.named_modules()
                      if isinstance(m, torch.nn.Linear) and ".layer." in n])
    assert float(kept[kept != 0].abs().min()) >= float(threshold) - 1e-7
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, embeddings)
    assert not torch.any(model.classifier.weight == 0)
    assert not any("weight_orig" in n for n, _ in model.named_parameters())  # made permanent


# ---------------------------------------------------------------- the student


def test_student_starts_from_every_other_teacher_layer(tmp_path):
    from transformers import AutoModelForSequenceClassification

    teacher = bert(layers=6)
    assert kept_layers(6, 3) == [0, 2, 4]
    student = student_from_teacher(teacher, 3, "sequence_classification")
    assert student.config.num_hidden_layers == 3
    t, s = teacher.state_dict(), student.state_dict()
    for i, k in enumerate([0, 2, 4]):
        assert torch.equal(s[f"bert.encoder.layer.{i}.attention.self.query.weight"],
                           t[f"bert.encoder.layer.{k}.attention.self.query.weight"])
    for key in ("bert.embeddings.word_embeddings.weight", "classifier.weight", "bert.pooler.dense.weight"):
        assert torch.equal(s[key], t[key])
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert torch.allclose(logits(reloaded, batch()), logits(student.eval(), batch()))
    with pytest.raises(UserError, match="between 1 and 5"):
        kept_layers(6, 6)


def test_refusals_say_why_in_one_line():
    assert "generated tokens" in refusal("distill", "causal_lm", bert())
    assert refusal("distill", "sequence_classification", bert(layers=1)).startswith("distill: the model has one layer")
    assert refusal("prune-heads", "sequence_classification", torch.nn.Linear(2, 2)).startswith("prune-heads: no")
    assert refusal("int8", "token_classification", bert()) == ""
    assert "unknown method" in refusal("fp4", "regression", bert())


@pytest.mark.parametrize("scheme", ["dynamic", "weight-only"])
def test_each_int8_scheme_reloads_with_plain_transformers_close_to_the_float_model(tmp_path, scheme):
    from transformers import AutoModelForSequenceClassification

    from raytune_llm.compression.methods import quantise_int8

    model = bert(layers=2)
    model.save_pretrained(tmp_path / "fp32")
    quantise_int8(tmp_path / "fp32", tmp_path / "int8", "sequence_classification", scheme)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "int8").eval()
    weight = reloaded.bert.encoder.layer[0].attention.self.query.weight
    assert type(weight).__name__ == "Int8Tensor"  # torchao's int8 storage came back with from_pretrained
    ids = torch.randint(0, 100, (4, 12))
    with torch.inference_mode():
        want, got = model(input_ids=ids).logits, reloaded(input_ids=ids).logits
    assert torch.allclose(want, got, atol=0.05) and not torch.equal(want, got)


def test_time_models_times_every_model_and_there_is_no_gpu_column_without_a_gpu():
    from raytune_llm.compression.measure import gpu_timing, time_models
    from raytune_llm.search.compress import Settings

    models = {"a": bert(layers=1), "b": bert(layers=2)}
    singles = [{"input_ids": torch.randint(0, 100, (1, 8))} for _ in range(3)]
    batches = [{"input_ids": torch.randint(0, 100, (3, 8))}]
    timed = time_models(models, singles, batches, rounds=2)
    for t in timed.values():
        assert 0 < t["latency_ms_median"] <= t["latency_ms_p95"] and t["throughput_rows_s"] > 0
    if not torch.cuda.is_available():
        assert gpu_timing(models, singles, batches, Settings()) == {}
