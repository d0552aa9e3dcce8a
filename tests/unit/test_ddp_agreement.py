"""The training loop as a two-process gloo DDP job, without Ray: the same metrics as one process (a token-level
loss weighed by each rank's token count), and FGM with a non-finite step on one rank stops both ranks cleanly
instead of leaving one waiting in a collective."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from raytune_llm.runs.tokenise import tokenise
from raytune_llm.schema import DataConfig, ModelConfig, TrainConfig
from raytune_llm.training.bare import BareSession
from raytune_llm.training.loop import run
from raytune_llm.training.spec import RunSpec
from tests.unit.ranks import spawn_two

NO_DROPOUT = {"hidden": 0.0, "attention": 0.0, "classifier": 0.0}  # identical forward passes in 1 and 2 processes


class RankSession(BareSession):
    def __init__(self, rank: int, world: int) -> None:
        super().__init__(None, device="cpu")
        self.rank, self.world_size = rank, world


def _worker(rank: int, port: int, spec: dict[str, Any], out: str, nan_at_call: int | None) -> None:
    import torch.distributed as dist

    world = 2
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    if nan_at_call is not None and rank == 1:  # this rank's loss turns NaN at one call; the other's stays finite
        from raytune_llm.tasks import get_task

        task = get_task(spec["task"])
        original, calls = task.loss, [0]

        def loss(*args: Any) -> Any:
            calls[0] += 1
            value = original(*args)
            return value * float("nan") if calls[0] == nan_at_call else value

        task.loss = loss
    session = RankSession(rank, world)
    last = run(RunSpec(**spec), session)
    Path(out, f"rank{rank}.json").write_text(json.dumps({"last": last, "reports": session.reports}))
    dist.destroy_process_group()


def _run_two(spec: RunSpec, tmp_path: Path, nan_at_call: int | None = None) -> list[dict[str, Any]]:
    spawn_two(_worker, spec.to_dict(), str(tmp_path), nan_at_call)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.fixture(scope="module")
def ner_spec(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> RunSpec:
    import pandas as pd

    from tests.conftest import NER_TAGS, _ner_rows

    # Sentences of different lengths, so that the two ranks' halves of a batch hold different numbers of tokens.
    rows = _ner_rows(64, 0)
    for i, row in enumerate(rows):
        extra = i % 5
        row["tokens"] = row["tokens"] + ["and", "so", "on", "today", "again"][:extra]
        row["ner_tags"] = row["ner_tags"] + [0] * extra
    data = tmp_path_factory.mktemp("ner-lengths")
    pd.DataFrame(rows).to_parquet(data / "train.parquet")
    pd.DataFrame(rows[:12]).to_parquet(data / "validation.parquet")
    cfg = DataConfig(source=str(data), text_column="tokens", label_column="ner_tags", labels=NER_TAGS)
    p = tokenise(cfg, ModelConfig(name="x", max_length=32), str(tiny_bert), tmp_path_factory.mktemp("ner") / "d", 0,
                 "token_classification")
    train = TrainConfig.model_validate({"max_steps": 4, "eval_every": 2, "batch_size": 8, "dropout": NO_DROPOUT,
                                        "optimizer": {"lr": 5e-3}})
    return RunSpec(model_path=str(tiny_bert), tokenizer_path=str(tiny_bert), data_path=str(p.path),
                   label_names=p.label_names, train=train.model_dump(mode="json"), metric="eval_f1",
                   task="token_classification", stability={"chance_level": {"enabled": False}})


def test_two_ranks_report_what_one_process_reports(ner_spec: RunSpec, tmp_path: Path) -> None:
    single = BareSession(None, device="cpu")
    run(ner_spec, single)
    ranks = _run_two(ner_spec, tmp_path)
    assert ranks[0]["last"]["step"] == ranks[1]["last"]["step"] == 4
    for one, two in zip(single.reports, ranks[0]["reports"]):
        # Same global batches, same token-weighted gradient: the same model after each step.
        assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=1e-4)
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
        assert two["eval_f1"] == pytest.approx(one["eval_f1"], abs=1e-6)


def test_fgm_with_a_non_finite_step_on_one_rank_stops_both(info: Any, tmp_path: Path) -> None:
    train = TrainConfig.model_validate({"max_steps": 6, "eval_every": 3, "batch_size": 8, "fgm_epsilon": 0.1,
                                        "dropout": NO_DROPOUT})
    spec = RunSpec(model_path=info.model_path, tokenizer_path=info.tokenizer_path, data_path=info.data_path,
                   label_names=info.label_names, train=train.model_dump(mode="json"), metric="eval_accuracy",
                   stability={"chance_level": {"enabled": False}})
    # Loss calls per step with FGM: clean + adversarial. Call 3 is step 1's clean loss.
    ranks = _run_two(spec, tmp_path, nan_at_call=3)
    assert [r["last"]["stop_reason"] for r in ranks] == ["non_finite", "non_finite"]
    assert ranks[0]["last"]["step"] == ranks[1]["last"]["step"] == 1
