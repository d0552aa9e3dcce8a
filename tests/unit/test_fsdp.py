"""resources.strategy: fsdp as a two-process gloo job without Ray (PyTorch FSDP2 runs on CPU): the same training as
one process, a checkpoint that is an ordinary model folder (export reloads it with the trial's predictions), and a
resumed run that ends where an uninterrupted one does. An eval split of odd size makes one rank run a forward pass
more than its rows need (FSDP's all-gathers need every rank)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from raytune_llm.runs.tokenise import tokenise
from raytune_llm.schema import DataConfig, ModelConfig, PeftMethod, TrainConfig
from raytune_llm.training.bare import BareSession
from raytune_llm.training.checkpoint import PREDICTIONS_FILE
from raytune_llm.training.loop import run
from raytune_llm.training.spec import RunSpec
from tests.unit.ranks import spawn_two
from tests.unit.test_ddp_agreement import NO_DROPOUT


class RankSession(BareSession):
    def __init__(self, rank: int, out: Path | None, restore: Path | None) -> None:
        super().__init__(out if rank == 0 else None, device="cpu", restore=restore)
        self.rank, self.world_size = rank, 2


def _worker(rank: int, port: int, spec: dict[str, Any], out: str, restore: str | None) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    session = RankSession(rank, Path(out) / "ckpt", Path(restore) if restore else None)
    last = run(RunSpec(**spec), session)
    Path(out, f"rank{rank}.json").write_text(json.dumps({"last": last, "reports": session.reports,
                                                         "checkpoints": [str(c) for c in session.checkpoints]}))
    dist.destroy_process_group()


def _run_two(spec: RunSpec, out: Path, restore: Path | None = None) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    spawn_two(_worker, spec.to_dict(), str(out), str(restore) if restore else None)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.fixture(scope="module")
def fsdp_spec(tiny_bert: Path, sentiment_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSpec, Any]:
    import pandas as pd

    data = tmp_path_factory.mktemp("odd-eval")
    train = pd.read_parquet(sentiment_dir / "train.parquet")
    train.to_parquet(data / "train.parquet")
    train.iloc[:13].to_parquet(data / "validation.parquet")  # 13 rows: 7 and 6, in batches of 2 -> 4 and 3 passes
    cfg = DataConfig(source=str(data), labels=["neg", "pos"], test_split=None)
    prepared = tokenise(cfg, ModelConfig(name="x", max_length=16), str(tiny_bert),
                        tmp_path_factory.mktemp("fsdp") / "d", 0)
    train_cfg = TrainConfig.model_validate({"max_steps": 6, "eval_every": 3, "batch_size": 8, "eval_batch_size": 2,
                                            "dropout": NO_DROPOUT, "optimizer": {"lr": 2e-3}})
    spec = RunSpec(model_path=str(tiny_bert), tokenizer_path=str(tiny_bert), data_path=str(prepared.path),
                   label_names=prepared.label_names, train=train_cfg.model_dump(mode="json"),
                   stability={"chance_level": {"enabled": False}}, strategy="fsdp")
    return spec, prepared


def test_fsdp_trains_checkpoints_resumes_and_exports(fsdp_spec: tuple[RunSpec, Any], tmp_path: Path) -> None:
    from raytune_llm.results.export import predict, write_model
    from raytune_llm.runs.layout import RunInfo

    spec, prepared = fsdp_spec
    single = BareSession(None, device="cpu")
    run(RunSpec(**{**spec.to_dict(), "strategy": "ddp"}), single)
    ranks = _run_two(spec, tmp_path / "whole")
    assert ranks[0]["last"]["step"] == ranks[1]["last"]["step"] == 6 and ranks[0]["last"]["strategy"] == "fsdp"
    for one, two in zip(single.reports, ranks[0]["reports"], strict=True):  # sharding changes no arithmetic
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
        assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=1e-4)

    # A checkpoint is an ordinary model folder: export's own path reloads it with the trial's predictions.
    first, last = (Path(c) for c in ranks[0]["checkpoints"])
    assert (last / "model" / "model.safetensors").is_file()
    info = RunInfo(config={"model": {"name": spec.model_path, "max_length": 16},
                           "data": {"source": "x", "labels": ["neg", "pos"], "test_split": None}},
                   model_path=spec.model_path, tokenizer_path=spec.tokenizer_path, data_path=spec.data_path,
                   label_names=spec.label_names, sizes=prepared.sizes, chance_value=prepared.chance_value)
    model = write_model(info, PeftMethod.full, last, tmp_path / "export", merge=False)
    _, preds = predict(model, info, TrainConfig.model_validate(spec.train), "eval")
    assert preds == json.loads((last / PREDICTIONS_FILE).read_text()) and len(preds) == 13

    # Resumed from the step-3 checkpoint on a fresh pair of processes: it ends where the whole run ended.
    resumed = _run_two(spec, tmp_path / "resumed", restore=first)
    assert [r["step"] for r in resumed[0]["reports"]] == [6]
    assert resumed[0]["last"]["eval_loss"] == pytest.approx(ranks[0]["last"]["eval_loss"], rel=1e-4)
    assert resumed[0]["last"]["train_loss"] == pytest.approx(ranks[0]["last"]["train_loss"], rel=1e-4)


def test_rules_for_fsdp(tiny_bert: Path, sentiment_dir: Path) -> None:
    from raytune_llm.config import experiment_problems
    from raytune_llm.schema import ExperimentConfig

    def problems(train: dict[str, Any], workers: int = 2) -> list[str]:
        cfg = ExperimentConfig.model_validate({"model": {"name": str(tiny_bert)},
                                               "data": {"source": str(sentiment_dir)}, "train": train,
                                               "resources": {"num_workers": workers, "strategy": "fsdp"}})
        return [p.path for p in experiment_problems(cfg)]

    assert problems({}) == []
    assert problems({}, workers=1) == ["resources.strategy"]
    assert problems({"peft": {"method": "lora"}}) == ["train.peft.method"]
    assert problems({"l2sp": 0.01, "fgm_epsilon": 0.1}) == ["train.fgm_epsilon", "train.l2sp"]
    assert problems({"precision": "fp16"}) == ["train.precision"]
