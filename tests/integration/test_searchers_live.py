"""Every searcher and scheduler in a real Ray Tune search (a real local Ray, a plain function trainable whose
curve depends on its params, so that schedulers have something to stop), built exactly as `search` builds them;
Optuna's study is checked afterwards."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from raytune_llm.schema import SearchConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROUNDS = 6


def curve(config: dict[str, Any]) -> None:
    from ray import tune

    # Best near lr 1e-4, weight decay helps a little; a round is an evaluation (eval_every = 2 steps).
    quality = 1 - abs(math.log10(config["optimizer.lr"]) + 4) / 2 + 10 * config["optimizer.weight_decay"]
    for i in range(1, ROUNDS + 1):
        tune.report({"eval_accuracy": 0.5 + 0.4 * quality * i / ROUNDS, "step": 2 * i, "total_steps": 2 * ROUNDS,
                     "stop_reason": ""})


@pytest.mark.parametrize(("searcher", "scheduler"), [
    ("tpe", "asha"), ("random", "median"), ("grid", "hyperband"), ("gp", "fifo"),
])
def test_each_searcher_and_scheduler_runs_a_real_search(ray_session: None, tmp_path: Path, searcher: str,
                                                        scheduler: str) -> None:
    from optuna.trial import TrialState
    from ray import tune

    from raytune_llm.search.tell import build_search

    lr = ({"type": "float", "low": 1e-5, "high": 1e-3, "log": True} if searcher != "grid"
          else {"type": "categorical", "choices": [1e-5, 1e-4, 1e-3]})
    cfg = SearchConfig.model_validate({
        "metric": "eval_accuracy", "mode": "max", "num_trials": 6,
        "space": {"optimizer.lr": lr, "optimizer.weight_decay": {"type": "categorical", "choices": [0.0, 0.01]}},
        "searcher": {"name": searcher, "seed": 1}, "scheduler": {"name": scheduler, "min_samples_required": 2}
        if scheduler == "median" else {"name": scheduler},
    })
    # HyperBand puts each trial in a bracket drawn from numpy's global RNG, and in the bracket whose grace period
    # exceeds the trial's length nothing is ever stopped: one trial at a time and a fixed draw, so that the
    # scheduler's decisions do not depend on which of two concurrent trials reports first.
    concurrent = 1 if scheduler == "hyperband" else 2
    np.random.seed(0)
    search = build_search(cfg, concurrent=concurrent)
    tuner = tune.Tuner(
        tune.with_resources(curve, {"cpu": 0.5}),
        tune_config=tune.TuneConfig(metric=cfg.metric, mode=cfg.mode, search_alg=search,
                                    scheduler=cfg.scheduler.build(ROUNDS), num_samples=cfg.num_trials,
                                    max_concurrent_trials=concurrent),
        run_config=tune.RunConfig(name=f"{searcher}-{scheduler}", storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 6 and not results.errors
    study = search._ot_study
    states = [t.state for t in study.trials]
    assert len(states) == 6 and TrialState.RUNNING not in states
    iterations = [r.metrics["training_iteration"] for r in results]
    # Each trial ran once from its first round: none was paused and started again (its rounds reported twice).
    assert all(list(r.metrics_dataframe["training_iteration"]) == list(range(1, i + 1))
               for r, i in zip(results, iterations, strict=True))
    if scheduler == "fifo":
        assert iterations == [ROUNDS] * 6 and set(states) == {TrialState.COMPLETE}
    else:  # the scheduler stopped someone, and Optuna was told PRUNED for exactly those trials
        stopped = sum(i < ROUNDS for i in iterations)
        assert stopped >= 1 and states.count(TrialState.PRUNED) == stopped
    if searcher == "grid":
        assert sorted((t.params["optimizer.lr"], t.params["optimizer.weight_decay"]) for t in study.trials) == \
            sorted((lr, wd) for lr in (1e-5, 1e-4, 1e-3) for wd in (0.0, 0.01))


def load_rows(run_dir: Path, trial_id: str) -> list[dict[str, Any]]:
    from raytune_llm.results.trials import load_trials

    return next(t.rows for t in load_trials(run_dir) if t.trial_id == trial_id)


def search_and_status(cfg: dict[str, Any], tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> tuple[Path, dict[str, Any]]:
    """`raytune-llm search` of the experiment, then its run folder and `status --json`."""
    import json

    import yaml

    from raytune_llm.cli.main import main

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    capsys.readouterr()
    assert main(["status", str(tmp_path / "runs" / "t"), "--json"]) == 0
    return tmp_path / "runs" / "t", json.loads(capsys.readouterr().out)


def test_a_multi_objective_product_search_exports_from_the_pareto_front(
    ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Accuracy against trainable weights: full fine-tuning and LoRA both end on the front; with a tolerance wider
    than their gap, export takes LoRA's far smaller trainable set."""
    import json

    from raytune_llm.cli.main import main
    from tests.conftest import tiny_experiment

    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp_path / "runs", **{
        "search.num_trials": 2, "search.max_concurrent_trials": 1, "search.scheduler": {"name": "fifo"},
        "search.searcher": {"name": "grid"}, "search.metric": "eval_accuracy", "search.mode": "max",
        "search.space": {"peft.method": {"type": "categorical", "choices": ["full", "lora"]}},
        "search.objectives": [{"metric": "trainable_params", "mode": "min"}], "search.pareto_tolerance": 1.0,
    })
    run_dir, status = search_and_status(cfg, tmp_path, capsys)
    front = {row["trial_id"]: row for row in status["pareto_front"] or []}
    lora = next(t["trial_id"] for t in status["trials"] if t["params"]["peft.method"] == "lora")
    full = next(t["trial_id"] for t in status["trials"] if t["params"]["peft.method"] == "full")
    assert lora in front  # the fewest trainable weights: never dominated
    assert front[lora]["trainable_params"] < next(t for t in load_rows(run_dir, full))["trainable_params"]
    assert status["best_trial"] == lora
    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["trial_id"] == lora


def test_a_pareto_pick_stopped_early_keeps_its_checkpoints_and_exports(
    ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The defaults a user gets with further objectives: ASHA stops trials and their checkpoints are pruned. LoRA
    with a learning rate too small to move is worse on eval loss than full fine-tuning at ASHA's first rung and is
    stopped there, yet it is on the Pareto front and, with a tolerance wider than the gap, the pick. Pruning asks
    the pick itself, so its checkpoints stay and export exports the trial `status` names."""
    import json

    from raytune_llm.cli.main import main
    from tests.conftest import tiny_experiment

    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp_path / "runs", **{
        "search.num_trials": 2, "search.max_concurrent_trials": 1,
        "search.scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
        "search.searcher": {"name": "random", "seed": 0},
        "search.space": {"peft.method": {"type": "categorical", "choices": ["full", "lora"]},
                         "optimizer.lr": {"type": "float", "low": 1e-8, "high": 1e-3, "log": True}},
        "search.points_to_evaluate": [{"peft.method": "full", "optimizer.lr": 1e-3},
                                      {"peft.method": "lora", "optimizer.lr": 1e-8}],
        "search.objectives": [{"metric": "trainable_params", "mode": "min"}], "search.pareto_tolerance": 10.0,
        "run.prune_stopped": True,
    })
    run_dir, status = search_and_status(cfg, tmp_path, capsys)
    by_method = {t["params"]["peft.method"]: t for t in status["trials"]}
    lora, full = by_method["lora"], by_method["full"]
    assert full["outcome"] == "done" and lora["outcome"] == "early-stopped"  # ASHA stopped LoRA at its first rung
    assert lora["best_eval_loss"] > full["best_eval_loss"]  # beaten on the metric alone ...
    assert status["best_trial"] == lora["trial_id"]  # ... and still the pick: fewer trainable weights, in tolerance
    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    exported = json.loads((out / "metrics.json").read_text())
    assert exported["trial_id"] == lora["trial_id"] and exported["eval_prediction_mismatches"] == 0
