"""The training loop run bare (no Ray) on a tiny BERT: reports, checkpoints, divergence, PEFT round trips."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from raytune_llm.bare import BareSession
from raytune_llm.config import DataConfig, ModelConfig, PeftMethod, TrainConfig
from raytune_llm.data import prepare
from raytune_llm.export import predict, write_model
from raytune_llm.rundir import RunInfo
from raytune_llm.train_loop import PREDICTIONS_FILE, RunSpec, run


@pytest.fixture(scope="module")
def info(tiny_bert: Path, sentiment_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RunInfo:
    out = tmp_path_factory.mktemp("prepared") / "data"
    cfg = DataConfig(source=str(sentiment_dir), labels=["neg", "pos"])
    p = prepare(cfg, ModelConfig(name="x", max_length=16), str(tiny_bert), out, seed=0)
    return RunInfo(config={}, model_path=str(tiny_bert), tokenizer_path=str(tiny_bert), data_path=str(p.path),
                   label_names=p.label_names, sizes=p.sizes, majority_baseline=p.majority_baseline)


def spec_for(info: RunInfo, **train: object) -> RunSpec:
    cfg = TrainConfig.model_validate({"max_steps": 6, "eval_every": 3, "batch_size": 8, **train})
    return RunSpec(model_path=info.model_path, tokenizer_path=info.tokenizer_path, data_path=info.data_path,
                   label_names=info.label_names, train=cfg.model_dump(mode="json"))


def test_reports_every_eval_with_checkpoint(info: RunInfo, tmp_path: Path) -> None:
    session = BareSession(tmp_path)
    last = run(spec_for(info, optimizer={"lr": 1e-3}), session)
    assert [r["step"] for r in session.reports] == [3, 6]
    for key in ("eval_loss", "eval_accuracy", "eval_macro_f1", "train_loss", "grad_norm", "lr", "samples_per_s"):
        assert math.isfinite(last[key]), key
    assert last["stop_reason"] == "" and last["total_steps"] == 6
    ckpt = session.checkpoints[-1]
    assert (ckpt / "model" / "model.safetensors").is_file()
    assert len(json.loads((ckpt / PREDICTIONS_FILE).read_text())) == info.sizes["eval"]


def test_divergence_is_stopped_with_a_finite_worst_value(info: RunInfo, tmp_path: Path) -> None:
    session = BareSession(tmp_path)
    last = run(spec_for(info, max_steps=40, eval_every=40, grad_clip=None, optimizer={"lr": 1e30}), session)
    assert last["stop_reason"] == "non_finite"
    assert last["step"] < 10  # stopped within a few steps, long before the 40-step budget
    assert last["eval_accuracy"] == 0.0  # the worst finite value, never NaN
    assert session.checkpoints == []


@pytest.mark.parametrize("method", [PeftMethod.full, PeftMethod.lora, PeftMethod.prompt_tuning,
                                    PeftMethod.prefix_tuning])
def test_exported_model_predicts_what_the_trial_predicted(info: RunInfo, tmp_path: Path, method: PeftMethod) -> None:
    session = BareSession(tmp_path / "run")
    train = {"optimizer": {"lr": 5e-3}, "peft": {"method": method.value, "prompt_tuning": {"num_virtual_tokens": 4},
                                                  "prefix_tuning": {"num_virtual_tokens": 4}}}
    spec = spec_for(info, **train)
    run(spec, session)
    ckpt = session.checkpoints[-1]
    model = write_model(info, method, ckpt, tmp_path / "out", merge=True)
    _, preds = predict(model, info, TrainConfig.model_validate(spec.train), "eval")
    assert preds == json.loads((ckpt / PREDICTIONS_FILE).read_text())
    expected = {"full": ["model"], "lora": ["adapter", "model"]}.get(method.value, ["adapter"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == expected
    for folder in expected:
        files = {p.name for p in (tmp_path / "out" / folder).iterdir()}
        assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)  # safetensors only
        assert any(f.endswith(".safetensors") for f in files)


def test_resume_from_checkpoint_continues_where_it_stopped(info: RunInfo, tmp_path: Path) -> None:
    spec = spec_for(info, optimizer={"lr": 1e-3})
    straight = BareSession(tmp_path / "a")
    run(spec, straight)
    halfway = straight.checkpoints[0]  # saved at step 3 of 6
    resumed = BareSession(tmp_path / "b", restore=halfway)
    run(spec, resumed)
    assert [r["step"] for r in resumed.reports] == [6]  # steps 1-3 are not repeated
    # Same data order, weights, optimizer and schedule state: the same end point as the straight run.
    assert resumed.reports[-1]["eval_loss"] == pytest.approx(straight.reports[-1]["eval_loss"], rel=1e-4)
    assert resumed.reports[-1]["lr"] == pytest.approx(straight.reports[-1]["lr"])


def test_dropout_overrides_reach_the_model(info: RunInfo) -> None:
    from raytune_llm.models import build_model

    train = TrainConfig.model_validate({"dropout": {"hidden": 0.3, "attention": 0.2, "classifier": 0.25}})
    model = build_model(info.model_path, info.label_names, train, info.tokenizer_path)
    assert model.config.hidden_dropout_prob == 0.3
    assert model.config.attention_probs_dropout_prob == 0.2
    assert model.dropout.p == 0.25  # BERT's classifier dropout
