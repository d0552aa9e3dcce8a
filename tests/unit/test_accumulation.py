"""Gradient accumulation (train.micro_batch_size): the same gradients as the whole batch at once, in one process
and over two gloo DDP ranks with a token-level loss; `auto` halves the micro-batch on out-of-memory and finishes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from raytune_llm.config import experiment_problems
from raytune_llm.core.outcomes import outcome, searcher_verdict
from raytune_llm.runs.layout import RunInfo
from raytune_llm.schema import ExperimentConfig, TrainConfig
from raytune_llm.training.bare import BareSession
from raytune_llm.training.loop import run
from raytune_llm.training.spec import RunSpec
from tests.unit.conftest import spec_for
from tests.unit.test_ddp_agreement import NO_DROPOUT, _run_two, ner_spec  # noqa: F401 (a fixture)


def _steps(reports: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    return ([v for r in reports for v in r["step_losses"]], [v for r in reports for v in r["step_grad_norms"]])


def test_micro_batches_give_the_whole_batchs_gradients(info: RunInfo) -> None:
    whole, micro = BareSession(None, device="cpu"), BareSession(None, device="cpu")
    train = {"dropout": NO_DROPOUT, "optimizer": {"lr": 1e-3}, "grad_clip": None}
    run(spec_for(info, **train), whole)
    run(spec_for(info, micro_batch_size=3, **train), micro)  # 8 rows: micro-batches of 3, 3 and 2
    losses, norms = _steps(whole.reports)
    assert _steps(micro.reports) == (pytest.approx(losses, rel=1e-4), pytest.approx(norms, rel=1e-4))
    assert len(norms) == 6 and len(set(norms)) > 1  # six real steps, with gradients that differ
    assert micro.reports[-1]["eval_loss"] == pytest.approx(whole.reports[-1]["eval_loss"], rel=1e-4)
    assert micro.reports[-1]["micro_batch_size"] == 3 and whole.reports[-1]["micro_batch_size"] == 8


def test_two_ranks_with_micro_batches_match_one_process(ner_spec: RunSpec, tmp_path: Path) -> None:  # noqa: F811
    single = BareSession(None, device="cpu")
    run(ner_spec, single)
    spec = RunSpec(**{**ner_spec.to_dict(), "train": {**ner_spec.train, "micro_batch_size": 1}})
    ranks = _run_two(spec, tmp_path)  # 4 rows per rank, one at a time, sentences of different lengths
    for one, two in zip(single.reports, ranks[0]["reports"], strict=True):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
        assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=1e-4)
    assert _steps(ranks[0]["reports"])[1] == pytest.approx(_steps(single.reports)[1], rel=1e-4)


def test_auto_halves_the_micro_batch_on_out_of_memory(info: RunInfo, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from raytune_llm.tasks import get_task

    task = get_task("sequence_classification")
    original = task.loss

    def loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
        if len(labels) > 2:  # a device that holds 2 rows' activations and no more
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(logits, labels, smoothing)

    monkeypatch.setattr(task, "loss", loss)
    train = {"dropout": NO_DROPOUT, "optimizer": {"lr": 1e-3}, "grad_clip": None}
    auto, fixed = BareSession(None, device="cpu"), BareSession(None, device="cpu")
    run(spec_for(info, micro_batch_size="auto", **train), auto)
    assert "out of memory at micro_batch_size=8: continuing with 4" in capsys.readouterr().out
    run(spec_for(info, micro_batch_size=2, **train), fixed)
    assert auto.reports[-1]["step"] == 6 and auto.reports[-1]["micro_batch_size"] == 2
    losses, norms = _steps(fixed.reports)  # the failed attempts left no gradients behind
    assert _steps(auto.reports) == (pytest.approx(losses, rel=1e-5), pytest.approx(norms, rel=1e-5))
    # A fixed size is the user's choice: the trial fails as out of memory, a failure of its params that the
    # searcher is told like a guard stop (the worst value), so that it steers away from them.
    failed = run(spec_for(info, micro_batch_size=4, **train), BareSession(None, device="cpu"))
    assert failed["stop_reason"] == "out_of_memory" and "Tried to allocate" in failed["stop_detail"]
    assert failed["step"] == 0 and failed["eval_accuracy"] == 0.0
    assert outcome("TERMINATED", failed) == "unstable:out_of_memory"
    assert searcher_verdict(False, failed, "eval_accuracy") == "infeasible"  # the worst value, ranked last


def test_rules_for_micro_batches(tiny_bert: Path, sentiment_dir: Path) -> None:
    def problems(train: dict[str, Any], workers: int = 1) -> list[str]:
        cfg = ExperimentConfig.model_validate({"model": {"name": str(tiny_bert)},
                                               "data": {"source": str(sentiment_dir)}, "train": train,
                                               "resources": {"num_workers": workers}})
        return [f"{p.path}: {p.message}" for p in experiment_problems(cfg)]

    assert problems({"micro_batch_size": 4}, workers=2) == []
    assert problems({"micro_batch_size": "auto"}) == []
    assert problems({"micro_batch_size": "auto"}, workers=2) == [
        "train.micro_batch_size: auto halves a worker's micro-batch when it runs out of memory, which one DDP rank "
        "of num_workers=2 cannot do alone; give a number, or use num_workers: 1"]
    assert problems({"micro_batch_size": 2, "fgm_epsilon": 0.1}) == [
        "train.micro_batch_size: FGM's adversarial pass needs the whole batch's gradient at once; remove "
        "micro_batch_size or fgm_epsilon"]
    for bad in (0, -2, "half", 2.5, True):
        with pytest.raises(ValueError, match=r"must be a number of rows \(1 or more\), auto, or null"):
            TrainConfig.model_validate({"micro_batch_size": bad})
