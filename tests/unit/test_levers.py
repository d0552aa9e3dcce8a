"""Stability levers on a tiny BERT: each does what it says, and the loop runs with all of them on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raytune_llm.models.build import build_model
from raytune_llm.runs.layout import RunInfo
from raytune_llm.schema import TrainConfig
from raytune_llm.training.bare import BareSession
from raytune_llm.training.levers import L2SP, Freezer, layer_of, num_layers, param_groups, reinit_top_layers
from raytune_llm.training.loop import run
from tests.unit.conftest import spec_for


def model_for(tiny_bert: Path, **train: object) -> torch.nn.Module:
    return build_model(str(tiny_bert), ["neg", "pos"], TrainConfig.model_validate(train), str(tiny_bert))


def test_layer_names_are_recognised() -> None:
    assert layer_of("bert.encoder.layer.3.attention.self.query.weight") == 3
    assert layer_of("base_model.model.model.layers.11.self_attn.q_proj.lora_A.default.weight") == 11
    assert layer_of("bert.embeddings.word_embeddings.weight") == -1
    assert layer_of("classifier.weight") is None


def test_layerwise_lr_decay_scales_lower_layers_down(tiny_bert: Path) -> None:
    cfg = TrainConfig.model_validate({"optimizer": {"lr": 1e-3}, "layerwise_lr_decay": 0.5})
    model = model_for(tiny_bert)
    lrs = {id(p): g["lr"] for g in param_groups(model, cfg) for p in g["params"]}
    named = dict(model.named_parameters())
    assert lrs[id(named["classifier.weight"])] == pytest.approx(1e-3)
    assert lrs[id(named["bert.encoder.layer.1.output.dense.weight"])] == pytest.approx(1e-3 * 0.5)
    assert lrs[id(named["bert.encoder.layer.0.output.dense.weight"])] == pytest.approx(1e-3 * 0.25)
    assert lrs[id(named["bert.embeddings.word_embeddings.weight"])] == pytest.approx(1e-3 * 0.125)
    no_decay = [g for g in param_groups(model, cfg) if g["weight_decay"] == 0.0]
    assert all(p.ndim < 2 for g in no_decay for p in g["params"])


def test_reinit_changes_only_the_top_layers(tiny_bert: Path) -> None:
    model = model_for(tiny_bert)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(123)
    reinit_top_layers(model, 1)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(".layer.1." in n for n in changed)
    assert not any(".layer.0." in n or "embeddings" in n for n in changed)
    with pytest.raises(ValueError, match="has 2 layers"):
        reinit_top_layers(model, 3)


def test_freezer_and_gradual_unfreezing(tiny_bert: Path) -> None:
    model = model_for(tiny_bert)
    assert num_layers(model) == 2
    gradual = Freezer(model, bottom=0, unfreeze_every=5)
    # Everything frozen at first, one layer more every 5 steps, and at last the embeddings (-1) too.
    assert [gradual.frozen_below(s) for s in (0, 4, 5, 10, 15, 50)] == [2, 2, 1, 0, -1, -1]
    assert Freezer(model, bottom=1, unfreeze_every=5).frozen_below(50) == 1  # bottom layer + embeddings kept
    static = Freezer(model, bottom=1, unfreeze_every=None)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    static.drop_frozen_grads(step=0)
    named = dict(model.named_parameters())
    assert named["bert.embeddings.word_embeddings.weight"].grad is None
    assert named["bert.encoder.layer.0.output.dense.weight"].grad is None
    assert named["bert.encoder.layer.1.output.dense.weight"].grad is not None
    assert named["classifier.weight"].grad is not None


def test_l2sp_penalty_grows_with_distance(tiny_bert: Path) -> None:
    model = model_for(tiny_bert)
    l2sp = L2SP(model, weight=0.5)
    assert l2sp.penalty().item() == 0.0  # nothing moved yet
    with torch.no_grad():
        model.bert.encoder.layer[0].output.dense.weight.add_(1.0)
    n = model.bert.encoder.layer[0].output.dense.weight.numel()
    assert float(l2sp.penalty().detach()) == pytest.approx(0.5 * n)


def test_l2sp_does_not_anchor_re_initialised_layers(tiny_bert: Path) -> None:
    model = model_for(tiny_bert)
    l2sp = L2SP(model, weight=0.5, reinit_top=1)
    anchored = {id(p) for p, _ in l2sp.anchors}
    assert id(model.bert.encoder.layer[1].output.dense.weight) not in anchored  # the re-initialised top layer
    assert id(model.bert.encoder.layer[0].output.dense.weight) in anchored


def test_reported_lr_is_the_heads_under_layerwise_decay(info: RunInfo, tmp_path: Path) -> None:
    spec = spec_for(info, layerwise_lr_decay=0.5, optimizer={"lr": 1e-3}, schedule={"name": "constant_with_warmup"})
    last = run(spec, BareSession(tmp_path))
    assert last["lr"] == pytest.approx(1e-3)  # not 1e-3 * 0.5**3, the embeddings'


def test_frozen_layers_do_not_move_in_training(info: RunInfo, tmp_path: Path) -> None:
    session = BareSession(tmp_path)
    run(spec_for(info, optimizer={"lr": 1e-2}, freeze_bottom_layers=1, max_steps=3, eval_every=3), session)
    from safetensors.torch import load_file

    trained = load_file(str(session.checkpoints[-1] / "model" / "model.safetensors"))
    start = {n: p for n, p in model_for(Path(info.model_path)).state_dict().items()}
    bottom, top = "bert.encoder.layer.0.output.dense.weight", "bert.encoder.layer.1.output.dense.weight"
    assert torch.equal(trained[bottom], start[bottom])
    assert not torch.equal(trained[top], start[top])


def test_loop_runs_with_every_lever_on(info: RunInfo, tmp_path: Path) -> None:
    levers = {"layerwise_lr_decay": 0.8, "reinit_top_layers": 1, "l2sp": 0.01, "unfreeze_every": 2,
              "fgm_epsilon": 0.5, "label_smoothing": 0.1, "schedule": {"name": "cyclic", "cycles": 2}}
    last = run(spec_for(info, optimizer={"lr": 1e-3}, **levers), BareSession(tmp_path))
    assert last["step"] == 6 and last["stop_reason"] == ""


def test_fgm_needs_trainable_embeddings(info: RunInfo, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="trainable input embeddings"):
        run(spec_for(info, fgm_epsilon=0.5, peft={"method": "lora"}), BareSession(tmp_path))
