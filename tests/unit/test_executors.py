"""Choosing an executor, the per-process caches of the in-process one, and PBT's rules."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from raytune_llm.config.loading import validate_dict
from raytune_llm.core import process_cache
from raytune_llm.core.errors import ConfigError
from raytune_llm.models.build import build_model
from raytune_llm.runs.layout import RunInfo
from raytune_llm.schema import TrainConfig
from tests.unit.test_validation import problems

BASE = {"model": {"name": "builtin:minilm"}, "data": {"source": "builtin:bbc_news"}}


def experiment(**sections: Any) -> Any:
    return validate_dict({**BASE, **sections})


@pytest.mark.parametrize(("workers", "executor", "in_process", "cpus"),
                         [(1, "auto", True, 1), (2, "auto", False, 2.1), (1, "train", False, 1.1),
                          (1, "tune", True, 1)])
def test_auto_trains_one_worker_in_process_and_more_on_ray_train(workers: int, executor: str, in_process: bool,
                                                                  cpus: float) -> None:
    res = experiment(resources={"num_workers": workers, "executor": executor}).resources
    assert res.in_process is in_process
    assert res.trial_cpus == pytest.approx(cpus)  # a Train trial's driver holds a CPU share beside its workers


def test_the_in_process_executor_refuses_several_workers() -> None:
    with pytest.raises(ConfigError) as exc:
        experiment(resources={"num_workers": 2, "executor": "tune"})
    assert "needs executor: train" in problems(exc)["resources.executor"]


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_cached_weights_are_exactly_what_a_fresh_load_gives(tiny_bert: Path) -> None:
    """The second build in a process is served from the cache; its weights (including the newly initialised
    classifier head) and the random state after it are those of a load from disk under the same seed."""
    process_cache.clear()
    process_cache.keep_weights()  # what the in-process executor does
    train = TrainConfig()

    def build(seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[str]]:
        process_cache.new_trial()
        torch.manual_seed(seed)
        # Three labels: the checkpoint's 2-label head does not fit, so a new head is initialised at random.
        model = build_model(str(tiny_bert), ["a", "b", "c"], train, str(tiny_bert))
        return _weights(model), torch.rand(3), list(process_cache.hits)

    fresh, after_fresh, hits = build(0)
    assert hits == []
    cached, after_cached, hits = build(0)
    assert hits == ["weights"]
    assert fresh.keys() == cached.keys() and all(torch.equal(fresh[k], cached[k]) for k in fresh)
    assert torch.equal(after_fresh, after_cached)
    other, _, hits = build(1)  # another seed: another head, so no cache hit
    assert hits == [] and not torch.equal(other["classifier.weight"], fresh["classifier.weight"])
    process_cache.clear()


def test_a_trained_copy_never_changes_the_cached_weights(tiny_bert: Path) -> None:
    process_cache.clear()
    process_cache.keep_weights()
    torch.manual_seed(0)
    first = build_model(str(tiny_bert), ["neg", "pos"], TrainConfig(), str(tiny_bert))
    with torch.no_grad():
        for p in first.parameters():
            p.add_(1.0)  # what training does to the trial's copy
    torch.manual_seed(0)
    second = build_model(str(tiny_bert), ["neg", "pos"], TrainConfig(), str(tiny_bert))
    assert process_cache.hits[-1:] == ["weights"]
    assert not any(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters(), strict=True))
    process_cache.clear()


PBT_SPACE = {"optimizer.lr": {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True},
             "peft.method": {"type": "categorical", "choices": ["full", "lora"]}}


def test_pbt_perturbs_what_can_change_mid_run_and_draws_the_rest_once() -> None:
    from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

    cfg = experiment(search={"space": PBT_SPACE, "scheduler": {"name": "pbt"}})
    assert cfg.search.scheduler.mutated(cfg.search.space) == ["optimizer.lr"]
    built = cfg.search.scheduler.build(8, cfg.search.space)
    assert isinstance(built, PopulationBasedTraining)
    assert list(built._hyperparam_mutations) == ["optimizer.lr"]
    # A trial's last report never starts an exploit: there would be nothing left to train with the new values.
    last = {"step": 8, "total_steps": 8, "training_iteration": 4, "eval_loss": 0.1}
    assert built.on_trial_result(None, object(), last) == TrialScheduler.CONTINUE


def test_pbt_problems_are_all_reported_with_their_paths() -> None:
    space = {**PBT_SPACE, "peft.lora.r": {"type": "int", "low": 4, "high": 16, "when": {"peft.method": "lora"}}}
    with pytest.raises(ConfigError) as exc:
        experiment(search={"space": space, "scheduler": {"name": "pbt", "mutate": ["optimizer.lr", "peft.method",
                                                                                   "dropout.hidden"]}},
                   resources={"num_workers": 2})
    found = problems(exc)
    assert "needs the in-process executor" in found["search.scheduler"]
    assert "remove `when:`" in found["search.space.peft.lora.r"]
    assert "'peft.method' cannot change in the middle of a run" in found["search.scheduler.mutate"]
    assert "'dropout.hidden' is not a param of search.space" in found["search.scheduler.mutate"]


def test_a_staged_checkpoint_is_moved_whole_and_replaces_a_stale_folder(tmp_path: Path) -> None:
    """The in-process executor moves a checkpoint to where Tune will record it, so that Tune's copy of the (now
    empty) staged folder is free; a folder of that index left by a driver that died is replaced, not merged."""
    from raytune_llm.executors.worker import place_checkpoint

    staged = tmp_path / "trial" / "rtl-ckpt-x"
    (staged / "model").mkdir(parents=True)
    (staged / "model" / "model.safetensors").write_bytes(b"w")
    (staged / "trainer_state.pt").write_bytes(b"s")
    target = tmp_path / "trial" / "checkpoint_000003"
    (target / "model").mkdir(parents=True)
    (target / "stale.bin").write_bytes(b"old")
    place_checkpoint(staged, target)
    assert list(staged.iterdir()) == []
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == \
        ["model", "model/model.safetensors", "trainer_state.pt"]
    assert (target / "model" / "model.safetensors").read_bytes() == b"w"


def test_ray_train_checkpoints_are_staged_in_the_trial_folder_and_moved_where_train_records_them(
    tmp_path: Path
) -> None:
    """Rank 0 of a Train trial on local storage stages in the trial's Train folder (clearing what a killed process
    staged there) and its upload function moves the files where Train records the checkpoint: no copy."""
    import pyarrow.fs
    import ray.train

    from raytune_llm.core.storage import STAGING_PREFIX
    from raytune_llm.executors.train import RayTrainSession
    from raytune_llm.executors.worker import staging_folder

    folder = tmp_path / "train" / "trial_1"
    (folder / f"{STAGING_PREFIX}killed" / "model").mkdir(parents=True)
    assert staging_folder(pyarrow.fs.LocalFileSystem(), str(folder)) == folder
    assert list(folder.iterdir()) == []
    assert staging_folder(pyarrow.fs.SubTreeFileSystem("bucket", pyarrow.fs.LocalFileSystem()), "x") is None

    session = object.__new__(RayTrainSession)  # what __init__ takes from Ray Train's context
    session.storage = type("Storage", (), {"storage_filesystem": pyarrow.fs.LocalFileSystem(),
                                           "build_checkpoint_path_from_name": lambda self, n: str(folder / n)})()
    staged = folder / f"{STAGING_PREFIX}now"
    (staged / "model").mkdir(parents=True)
    (staged / "model" / "model.safetensors").write_bytes(b"w")
    inode = (staged / "model" / "model.safetensors").stat().st_ino
    persisted = session.move_into_place(ray.train.Checkpoint.from_directory(str(staged)), "checkpoint_2026")
    assert persisted.path == str(folder / "checkpoint_2026")
    assert isinstance(persisted.filesystem, pyarrow.fs.LocalFileSystem)
    assert (folder / "checkpoint_2026" / "model" / "model.safetensors").stat().st_ino == inode  # renamed
    assert list(staged.iterdir()) == []


def test_pbt_keeps_every_perturbed_value_in_its_range() -> None:
    """Ray's explore step multiplies by 0.8 / 1.2 without bounds: beta2 0.999 became 1.199 and the trial errored."""
    import random

    from ray.tune.schedulers.pbt import _explore

    from raytune_llm.schema.space import apply_params

    space = {"optimizer.lr": {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True},
             "optimizer.beta2": {"type": "float", "low": 0.9, "high": 0.999},
             "dropout.hidden": {"type": "categorical", "choices": [0.0, 0.1, 0.2]},
             "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.05}}
    cfg = experiment(search={"space": space, "scheduler": {"name": "pbt", "resample_probability": 0.0}})
    built = cfg.search.scheduler.build(8, cfg.search.space)
    random.seed(0)
    config = {"optimizer.lr": 1.0e-3, "optimizer.beta2": 0.999, "dropout.hidden": 0.2, "label_smoothing": 0.2}
    for _ in range(50):
        config, _ = _explore(config, built._hyperparam_mutations, built._resample_probability,
                             built._perturbation_factors, built._custom_explore_fn)
        assert 1.0e-5 <= config["optimizer.lr"] <= 1.0e-3 and 0.9 <= config["optimizer.beta2"] <= 0.999
        assert config["dropout.hidden"] in (0.0, 0.1, 0.2)
        assert round(config["label_smoothing"] / 0.05, 9).is_integer() and 0.0 <= config["label_smoothing"] <= 0.2
        apply_params(cfg.train, config)  # every perturbed config is one a trial accepts


def test_a_trial_tune_stops_gives_its_model_back_before_the_next_trial(info: RunInfo, tmp_path: Path) -> None:
    """Tune stops a trial with SystemExit at a report; the memory is released only once nothing holds the model."""
    import gc

    from transformers import BertForSequenceClassification

    from raytune_llm.executors.worker import run_then_release
    from raytune_llm.training.bare import BareSession
    from tests.unit.conftest import spec_for

    class StoppedByTune(BareSession):
        def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
            super().report(metrics, checkpoint_dir)
            raise SystemExit(0)  # what ray.tune.report does in a trial its scheduler stopped

    alive: list[int] = []

    def release() -> None:
        gc.collect()
        alive.append(sum(type(o) is BertForSequenceClassification for o in gc.get_objects()))

    process_cache.clear()  # no copy of the weights kept for a next trial: every model left is the trial's
    with pytest.raises(SystemExit):
        run_then_release(spec_for(info), StoppedByTune(tmp_path), release)
    assert alive == [0]


def test_a_pbt_exploit_whose_recorded_checkpoint_was_deleted_copies_the_donors_latest(tmp_path: Path) -> None:
    """#24.3: PBT records a donor's checkpoint at its perturbation and copies it a little later; by then the donor's
    checkpoint manager (its `keep_checkpoints` best by score, and its latest) may have deleted it, and the trial that
    took it over failed to restore. The donor's latest, which Tune always keeps, is what is copied then."""
    import ray.tune
    from ray.train._internal.session import _TrainingResult
    from ray.tune.experiment import Trial

    space = {"optimizer.lr": {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True}}
    cfg = experiment(search={"space": space, "scheduler": {"name": "pbt"}})
    pbt = cfg.search.scheduler.build(8, cfg.search.space)
    pbt.set_search_properties("eval_accuracy", "max")  # what Tune does with the search's metric
    pbt._log_config = False  # Tune's policy log needs a real experiment folder
    controller = SimpleNamespace(search_alg=None, pause_trial=lambda trial, should_checkpoint=False: None)
    taker, donor = (Trial("__fake", config={"optimizer.lr": 1e-4}, stub=True) for _ in range(2))
    for t, score in ((taker, 0.5), (donor, 0.8)):
        pbt.on_trial_add(controller, t)
        pbt._trial_state[t].last_score = score
    recorded, latest = tmp_path / "checkpoint_000001", tmp_path / "checkpoint_000004"
    latest.mkdir()  # the recorded one is gone: the donor's later, better reports pushed it out
    pbt._trial_state[donor].last_checkpoint = ray.tune.Checkpoint.from_directory(str(recorded))
    donor.run_metadata.checkpoint_manager.register_checkpoint(
        _TrainingResult(checkpoint=ray.tune.Checkpoint.from_directory(str(latest)), metrics={"step": 4}))
    pbt._exploit(controller, taker, donor)
    restored = taker.run_metadata.checkpoint_manager.latest_checkpoint_result
    assert restored.checkpoint.path == str(latest)
