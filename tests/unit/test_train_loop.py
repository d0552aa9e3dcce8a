"""The training loop run bare (no Ray) on a tiny BERT: reports, checkpoints, divergence, PEFT round trips."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from raytune_llm.results.export import predict, write_model
from raytune_llm.runs.layout import RunInfo
from raytune_llm.schema import PeftMethod, TrainConfig
from raytune_llm.training.bare import BareSession
from raytune_llm.training.checkpoint import PREDICTIONS_FILE
from raytune_llm.training.loop import run
from tests.unit.conftest import spec_for


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
    from raytune_llm.models.build import build_model

    train = TrainConfig.model_validate({"dropout": {"hidden": 0.3, "attention": 0.2, "classifier": 0.25}})
    model = build_model(info.model_path, info.label_names, train, info.tokenizer_path)
    assert model.config.hidden_dropout_prob == 0.3
    assert model.config.attention_probs_dropout_prob == 0.2
    assert model.dropout.p == 0.25  # BERT's classifier dropout


def test_zero_learning_rate_is_stopped_at_chance_level(info: RunInfo, tmp_path: Path) -> None:
    session = BareSession(tmp_path)
    # lr 0: the eval loss never moves; a huge loss_margin makes the (noisy) train loss count as flat too.
    spec = spec_for(info, stability={"chance_level": {"at_fraction": 0.25, "loss_margin": 0.5}}, max_steps=12,
                    eval_every=2, optimizer={"lr": 0.0})
    last = run(spec, session)
    assert last["stop_reason"] == "chance_level"
    assert last["step"] == 8  # the first evaluation past 25% with a trend to read (4 evaluations)
    assert last["eval_accuracy"] == 0.0  # reported as the worst finite value, so TPE and ASHA learn from it
    assert 0.0 < last["real_eval_accuracy"] <= 1.0  # ... and the real value beside it
    assert session.checkpoints  # kept, for the fallback when no trial of a search is healthy


def test_a_run_continued_from_another_runs_checkpoint_keeps_its_own_hyperparameters(info: RunInfo,
                                                                                    tmp_path: Path) -> None:
    """What PBT relies on: a trial that takes over another trial's checkpoint continues from its step and weights
    with its own (perturbed) learning rate, not the one saved in the optimizer state."""
    constant = {"name": "constant_with_warmup", "warmup_ratio": 0.0}
    donor = BareSession(tmp_path / "donor")
    run(spec_for(info, optimizer={"lr": 1e-3}, schedule=constant), donor)
    taker = BareSession(tmp_path / "taker", restore=donor.checkpoints[0])  # saved at step 3 of 6
    run(spec_for(info, optimizer={"lr": 2.5e-3}, schedule=constant), taker)
    assert [r["step"] for r in taker.reports] == [6]
    assert donor.reports[-1]["lr"] == pytest.approx(1e-3)
    assert taker.reports[-1]["lr"] == pytest.approx(2.5e-3)


def test_a_run_that_learns_nothing_says_so_in_every_report_and_ends_failed(info: RunInfo, tmp_path: Path) -> None:
    """#24.11: a run at lr 0 that the chance-level rule does not stop (no trend to read in two evaluations) runs
    its budget; its reports say it never left chance, and it counts as failed ("ended at chance") wherever outcomes
    are read. With the rule off nothing is judged against chance."""
    from raytune_llm.core.outcomes import outcome

    session = BareSession(tmp_path)
    last = run(spec_for(info, stability={}, optimizer={"lr": 0.0}), session)
    assert last["stop_reason"] == "" and last["step"] == last["total_steps"]
    assert [r["at_chance"] for r in session.reports] == [True, True]
    assert outcome("TERMINATED", last) == "at-chance:done"
    learnt = BareSession(tmp_path / "learnt")  # the same run that learns: off chance, healthy
    last = run(spec_for(info, stability={}, optimizer={"lr": 3e-3}, max_steps=24, eval_every=12), learnt)
    assert last["at_chance"] is False and outcome("TERMINATED", last) == "done"
    off = BareSession(tmp_path / "off")
    last = run(spec_for(info, optimizer={"lr": 0.0}), off)  # spec_for's default: the chance-level rule off
    assert "at_chance" not in last and outcome("TERMINATED", last) == "done"


def test_a_resumed_run_keeps_what_its_guard_had_seen(info: RunInfo, tmp_path: Path) -> None:
    """#24.5: each detector's history and the run's best chance metric travel in the checkpoint: the guard of a run
    resumed half-way ends in the state of the uninterrupted run's (on old code it started from nothing)."""
    import torch

    from raytune_llm.training.checkpoint import STATE_FILE

    stability = {"chance_level": {"at_fraction": 1.0}, "plateau": {"enabled": True, "patience": 5}}
    spec = spec_for(info, stability=stability, optimizer={"lr": 1e-3}, max_steps=6, eval_every=2)
    straight = BareSession(tmp_path / "a")
    run(spec, straight)
    resumed = BareSession(tmp_path / "b", restore=straight.checkpoints[0])  # saved at step 2 of 6
    run(spec, resumed)

    def guard(session: BareSession) -> dict:
        return torch.load(session.checkpoints[-1] / STATE_FILE, weights_only=True)["guard"]

    a, b = guard(straight), guard(resumed)
    assert len(a["detectors"]["chance_level"]["history"]["value"]) == 3  # every evaluation of the run
    assert a["detectors"]["chance_level"]["history"]["value"] == pytest.approx(
        b["detectors"]["chance_level"]["history"]["value"], abs=1e-6)
    assert a["detectors"]["plateau"] == pytest.approx(b["detectors"]["plateau"], abs=1e-6)
    assert a["chance_best"] == pytest.approx(b["chance_best"], abs=1e-6)
    assert set(a["detectors"]) >= {"non_finite", "loss_spike", "grad_explosion", "chance_level", "plateau"}
