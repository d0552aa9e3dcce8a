"""train.gradient_checkpointing: the same loss and gradients, far fewer activations kept for backward; in the loop
the same run as without it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raytune_llm.models.build import build_model
from raytune_llm.runs.layout import RunInfo
from raytune_llm.schema import TrainConfig
from raytune_llm.training.bare import BareSession
from raytune_llm.training.loop import run
from tests.unit.conftest import spec_for
from tests.unit.test_ddp_agreement import NO_DROPOUT


def _forward_backward(model: torch.nn.Module) -> tuple[float, list[torch.Tensor], int]:
    """Loss, gradients, and the bytes autograd keeps for backward during the forward pass."""
    kept = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept[0] += t.numel() * t.element_size()
        return t

    model.train()
    ids = torch.randint(5, 100, (4, 32), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 1, 0])).loss
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad], kept[0]


@pytest.mark.parametrize("method", ["full", "lora"])
def test_same_gradients_with_far_fewer_saved_activations(tiny_bert: Path, method: str) -> None:
    results = []
    for checkpointing in (False, True):
        train = TrainConfig.model_validate({"gradient_checkpointing": checkpointing, "dropout": NO_DROPOUT,
                                            "peft": {"method": method}})
        torch.manual_seed(0)  # the same new head
        results.append(_forward_backward(build_model(str(tiny_bert), ["neg", "pos"], train, str(tiny_bert))))
    (loss, grads, kept), (loss_ckpt, grads_ckpt, kept_ckpt) = results
    assert loss_ckpt == pytest.approx(loss, rel=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(grads, grads_ckpt, strict=True))
    assert kept_ckpt < 0.5 * kept  # the layers' inner activations are recomputed in backward, not kept


def test_the_loop_runs_the_same_with_it(info: RunInfo) -> None:
    reports = {}
    for checkpointing in (False, True):
        session = BareSession(None, device="cpu")
        run(spec_for(info, gradient_checkpointing=checkpointing, dropout=NO_DROPOUT, optimizer={"lr": 1e-3}), session)
        reports[checkpointing] = [v for r in session.reports for v in r["step_losses"]]
    assert reports[True] == pytest.approx(reports[False], rel=1e-5)
