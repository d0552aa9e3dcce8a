"""The `refit:` section and export's refit plan, the refit data (train + eval as train), and which refit of
several seeds export takes (Ray-free; the refit end to end: tests/integration/test_refit.py)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from raytune_llm.config.loading import validate_dict
from raytune_llm.core.errors import ConfigError, UserError
from raytune_llm.results.refit import RefitRun, median_run
from raytune_llm.runs.layout import RunInfo
from raytune_llm.schema import TrainConfig
from raytune_llm.search.refit import RefitPlan, plan_refit, refit_train, write_refit_data

BASE = {"model": {"name": "m"}, "data": {"source": "d"}}


def experiment(refit: object = None, **data: object):
    extra = {} if refit is None else {"refit": refit}
    return validate_dict({**BASE, "data": {"source": "d", **data}, **extra})


def test_refit_is_on_by_default_only_when_the_eval_split_was_held_out_of_train() -> None:
    assert experiment().refit.enabled is None and not experiment().refit.applies(None)
    assert experiment(eval_holdout=100).refit.applies(100)
    assert plan_refit(experiment(eval_holdout=100), None, None, None) == RefitPlan("full", 1)
    assert plan_refit(experiment(), None, None, None) is None
    assert plan_refit(experiment({"enabled": False}, eval_holdout=100), None, None, None) is None


def test_the_shorthand_and_the_full_section() -> None:
    assert experiment(True).refit.enabled is True and experiment(True).refit.steps == "full"
    assert experiment(False, eval_holdout=10).refit.applies(10) is False
    cfg = experiment({"steps": "best", "seeds": 3})
    assert (cfg.refit.enabled, cfg.refit.steps, cfg.refit.seeds) == (None, "best", 3)


@pytest.mark.parametrize(("refit", "path", "says"), [
    ({"enable": True}, "refit.enable", "unknown key; allowed here: enabled, steps, seeds"),
    ({"steps": "last"}, "refit.steps", "'full' or 'best'"),
    ({"seeds": 0}, "refit.seeds", "greater than or equal to 1"),
    ("yes please", "refit", ""),
])
def test_bad_refit_sections_name_the_key(refit: object, path: str, says: str) -> None:
    with pytest.raises(ConfigError) as exc:
        experiment(refit)
    found = {p.path: p.message for p in exc.value.problems}
    assert path in found and says in found[path]


def test_command_line_flags_override_the_yaml() -> None:
    cfg = experiment({"steps": "best", "seeds": 3}, eval_holdout=10)
    assert plan_refit(cfg, None, "full", None) == RefitPlan("full", 3)
    assert plan_refit(cfg, None, None, 1) == RefitPlan("best", 1)
    assert plan_refit(cfg, False, None, None) is None
    assert plan_refit(experiment(), True, None, None) == RefitPlan("full", 1)  # asked for without a holdout
    with pytest.raises(UserError, match=r"data\.eval_holdout is not set.*add --refit"):
        plan_refit(experiment(), None, None, 3)
    with pytest.raises(UserError, match="--no-refit"):
        plan_refit(cfg, False, "best", None)
    with pytest.raises(UserError, match="at least 1"):
        plan_refit(cfg, True, None, 0)


def test_refit_steps_best_is_exactly_the_picks_step_and_full_keeps_the_budget() -> None:
    epochs = TrainConfig.model_validate({"epochs": 2, "seed": 7})
    assert refit_train(epochs, "best", 30, 8).max_steps == 30
    full = refit_train(epochs, "full", 30, 8)
    assert (full.max_steps, full.epochs, full.seed) == (None, 2, 8)  # epochs over the larger data
    assert refit_train(TrainConfig(max_steps=50), "full", 30, 1).max_steps == 50


def test_refit_data_trains_on_train_and_eval_and_keeps_eval_and_test(info: RunInfo, tmp_path: Path) -> None:
    import datasets

    shutil.copytree(info.data_path, tmp_path / "prepared" / "data")
    run = dataclasses.replace(info, data_path=str(tmp_path / "prepared" / "data"), run_root=str(tmp_path))
    path, rows = write_refit_data(run)
    assert path == str(tmp_path / "prepared" / "refit_data") and rows == info.sizes["train"] + info.sizes["eval"]
    original, refit = datasets.load_from_disk(run.data_path), datasets.load_from_disk(path)
    assert len(refit["train"]) == rows and refit["train"].column_names == original["train"].column_names
    assert refit["train"][-1]["input_ids"] == original["eval"][-1]["input_ids"]  # eval's rows, appended
    assert refit["eval"][:] == original["eval"][:] and refit["test"][:] == original["test"][:]
    assert write_refit_data(run) == (path, rows)  # made once per run


def run(seed: int, score: float | None, reason: str = "") -> RefitRun:
    return RefitRun(seed, {"step": 10, "stop_reason": reason}, Path(f"ckpt{seed}"), score=score)


def test_the_median_seed_is_exported_and_failed_refits_take_no_part() -> None:
    runs = [run(1, 0.70), run(2, 0.90), run(3, 0.80)]
    assert median_run(runs, "max").seed == 3
    assert median_run(runs, "min").seed == 3
    # An even count: the worse of the two middle runs (choosing on the test score must not flatter it).
    assert median_run([run(1, 0.7), run(2, 0.9)], "max").seed == 1
    assert median_run([run(1, 0.7), run(2, 0.9)], "min").seed == 2
    assert median_run([run(1, 0.99, "non_finite"), run(2, 0.6)], "max").seed == 2
    assert median_run([run(1, 0.99, "non_finite")], "max") is None
    assert median_run([run(1, None)], "max").seed == 1  # one refit needs no score
