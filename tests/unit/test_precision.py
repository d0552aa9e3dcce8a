"""train.precision: what auto means where, fp16 with its gradient scaler on CPU (a skipped step is not a failure,
an overflow that persists is), and fp16 agreeing with fp32 on what a short run learns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raytune_llm.runs.layout import RunInfo
from raytune_llm.schema import TrainConfig
from raytune_llm.training.bare import BareSession
from raytune_llm.training.loop import _scheduler, run
from raytune_llm.training.precision import OVERFLOW_PATIENCE, autocast_for, resolve
from tests.unit.conftest import spec_for
from tests.unit.test_ddp_agreement import NO_DROPOUT


def test_auto_is_bf16_only_on_a_gpu_that_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve("auto", cuda) == "bf16" and resolve("auto", cpu) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a V100 or T4
    assert resolve("auto", cuda) == "fp32"
    assert resolve("fp16", cpu) == "fp16" and resolve("bf16", cpu) == "bf16"
    assert autocast_for("fp16", cpu) == {"device_type": "cpu", "dtype": torch.float16, "enabled": True}
    assert autocast_for("fp32", cuda)["enabled"] is False


class InfGrad(torch.autograd.Function):
    """A finite loss whose gradients overflow: what fp16 does to a loss scaled too far."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return grad * float("inf")


def _overflow_on(monkeypatch: pytest.MonkeyPatch, calls: int | None) -> None:
    """The first `calls` loss calls (None: all) overflow in backward."""
    from raytune_llm.tasks import get_task

    task = get_task("sequence_classification")
    original, count = task.loss, [0]

    def loss(*args: object) -> torch.Tensor:
        count[0] += 1
        value = original(*args)
        return InfGrad.apply(value) if calls is None or count[0] <= calls else value

    monkeypatch.setattr(task, "loss", loss)


def test_fp16_skips_overflowing_steps_and_trains_on(info: RunInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    _overflow_on(monkeypatch, calls=3)
    session = BareSession(None, device="cpu")
    spec = spec_for(info, precision="fp16", optimizer={"lr": 1e-3})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. torch's "lr_scheduler.step() before optimizer.step()"
        last = run(spec, session)
    assert last["stop_reason"] == "" and last["step"] == 6
    assert last["autocast"] == "fp16" and last["fp16_skipped_steps"] == 3
    assert last["loss_scale"] == 65536.0 / 2**3  # GradScaler halved its scale once per skipped step
    # The schedule advanced only with the 3 updates that were applied (accelerate's rule for skipped steps).
    cfg = TrainConfig.model_validate(spec.train)
    total = cfg.max_steps
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optimizer.lr)
    schedule = _scheduler(cfg, optimizer, round(cfg.schedule.warmup_ratio * total), total)
    for _ in range(3):
        optimizer.step()
        schedule.step()
    assert last["lr"] == pytest.approx(max(schedule.get_last_lr()))


def test_fp16_overflow_that_persists_is_a_non_finite_failure(info: RunInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    _overflow_on(monkeypatch, calls=None)
    fp16 = run(spec_for(info, precision="fp16", max_steps=40, eval_every=40), BareSession(None, device="cpu"))
    assert fp16["stop_reason"] == "non_finite" and "fp16" in fp16["stop_detail"]
    assert fp16["step"] == OVERFLOW_PATIENCE - 1  # every step before it was skipped, not failed
    fp32 = run(spec_for(info, precision="fp32", max_steps=40, eval_every=40), BareSession(None, device="cpu"))
    assert fp32["stop_reason"] == "non_finite" and fp32["step"] == 0  # without a scaler: the first such step


def test_fp16_and_bf16_learn_what_fp32_learns(info: RunInfo) -> None:
    losses = {}
    for precision in ("fp32", "fp16", "bf16"):
        session = BareSession(None, device="cpu")
        run(spec_for(info, precision=precision, dropout=NO_DROPOUT, optimizer={"lr": 1e-3}), session)
        losses[precision] = [v for r in session.reports for v in r["step_losses"]]
    assert losses["fp16"] == pytest.approx(losses["fp32"], rel=2e-2)  # fp16 keeps 11 bits of mantissa
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=5e-2)  # bf16 8
    assert losses["fp16"] != losses["fp32"]  # and it did compute in half precision


def test_fp16_skipped_steps_are_no_gradient_norm_and_a_resume_keeps_scale_and_schedule(
        info: RunInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The steps the scaler skipped leave no non-finite gradient norm in the reports (2 of the first window's 3);
    a run resumed from its checkpoint goes on with the loss scale and the learning rate it had (before: 65536 again,
    and a schedule that counted the skipped steps as updates)."""
    import math

    _overflow_on(monkeypatch, calls=2)
    whole = BareSession(tmp_path / "whole", device="cpu")
    (tmp_path / "whole").mkdir()
    spec = spec_for(info, precision="fp16", optimizer={"lr": 1e-3}, schedule={"warmup_ratio": 0.5})
    run(spec, whole)
    assert all(math.isfinite(r[k]) for r in whole.reports for k in ("grad_norm", "grad_norm_max"))
    _overflow_on(monkeypatch, calls=0)  # the resumed part: the steps after the checkpoint, none overflowing
    resumed = BareSession(None, device="cpu", restore=whole.checkpoints[0])
    last = run(spec, resumed)
    assert last["loss_scale"] == whole.reports[-1]["loss_scale"] == 65536.0 / 2**2
    assert last["fp16_skipped_steps"] == 2
    assert last["lr"] == pytest.approx(whole.reports[-1]["lr"])
