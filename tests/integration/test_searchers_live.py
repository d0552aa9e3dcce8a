"""Every searcher and scheduler in a real Ray Tune search (a real local Ray, a plain function trainable whose
curve depends on its params, so that schedulers have something to stop), built exactly as `search` builds them;
Optuna's study is checked afterwards."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from raytune_llm.config import SearchConfig

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

    from raytune_llm.searchers.tell import build_search

    lr = ({"type": "float", "low": 1e-5, "high": 1e-3, "log": True} if searcher != "grid"
          else {"type": "categorical", "choices": [1e-5, 1e-4, 1e-3]})
    cfg = SearchConfig.model_validate({
        "metric": "eval_accuracy", "mode": "max", "num_trials": 6,
        "space": {"optimizer.lr": lr, "optimizer.weight_decay": {"type": "categorical", "choices": [0.0, 0.01]}},
        "searcher": {"name": searcher, "seed": 1}, "scheduler": {"name": scheduler, "min_samples_required": 2}
        if scheduler == "median" else {"name": scheduler},
    })
    search = build_search(cfg, concurrent=2)
    tuner = tune.Tuner(
        tune.with_resources(curve, {"cpu": 0.5}),
        tune_config=tune.TuneConfig(metric=cfg.metric, mode=cfg.mode, search_alg=search,
                                    scheduler=cfg.scheduler.build(ROUNDS), num_samples=cfg.num_trials,
                                    max_concurrent_trials=2),
        run_config=tune.RunConfig(name=f"{searcher}-{scheduler}", storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 6 and not results.errors
    study = search._ot_study
    states = [t.state for t in study.trials]
    assert len(states) == 6 and TrialState.RUNNING not in states
    iterations = [r.metrics["training_iteration"] for r in results]
    if scheduler == "fifo":
        assert iterations == [ROUNDS] * 6 and set(states) == {TrialState.COMPLETE}
    else:  # the scheduler stopped someone, and Optuna was told PRUNED for exactly those trials
        stopped = sum(i < ROUNDS for i in iterations)
        assert stopped >= 1 and states.count(TrialState.PRUNED) == stopped
    if searcher == "grid":
        assert sorted((t.params["optimizer.lr"], t.params["optimizer.weight_decay"]) for t in study.trials) == \
            sorted((lr, wd) for lr in (1e-5, 1e-4, 1e-3) for wd in (0.0, 0.01))
