"""The search benchmark's simulation (benchmarks/search_efficiency.py) agrees with a real Ray Tune search: the
same searcher and scheduler, fed the same curves by a replay trainable, propose the same configs and stop the same
trials after the same number of evaluations."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


def load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_simulation_stops_the_same_trials_as_a_real_tuner(ray_session: None, tmp_path: Path) -> None:
    from ray import tune

    from raytune_llm.schema import SearchConfig
    from raytune_llm.search.tell import build_search

    bench = load("search_efficiency")
    source = bench.synthetic()
    trials = 10
    simulated = bench.simulate({"searcher": "tpe", "scheduler": "asha", "guard": None}, source, seed=0,
                               concurrent=1, max_trials=trials)
    expected = [(t["run"]["config"]["peft.method"], round(t["run"]["config"]["optimizer.lr"], 12), t["round"])
                for t in simulated["trials"]]
    assert any(rounds < 10 for *_, rounds in expected) and any(rounds == 10 for *_, rounds in expected)

    cfg = SearchConfig.model_validate({"metric": "eval_accuracy", "mode": "max", "space": bench.SPACE,
                                       "num_trials": bench.BUDGET_TRIALS, "searcher": {"name": "tpe", "seed": 0}})
    from ray import cloudpickle

    curves = sys.modules["synthetic_curves"]
    cloudpickle.register_pickle_by_value(curves)  # the benchmark's curves travel to the trial's process

    def replay_trainable(config: dict[str, Any]) -> None:
        run = curves.run_for(config)
        for k, e in enumerate(run["evals"]):
            tune.report({"eval_accuracy": e["eval_accuracy"], "step": e["step"], "total_steps": run["total_steps"],
                         "stop_reason": "", "round": k + 1})

    tuner = tune.Tuner(
        tune.with_resources(replay_trainable, {"cpu": 0.5}),
        tune_config=tune.TuneConfig(metric="eval_accuracy", mode="max", search_alg=build_search(cfg, 1),
                                    scheduler=cfg.scheduler.build(10), num_samples=trials, max_concurrent_trials=1),
        run_config=tune.RunConfig(name="replay", storage_path=str(tmp_path), verbose=0),
    )
    grid = tuner.fit()
    assert not grid.errors
    real = sorted(((r.config["peft.method"], round(r.config["optimizer.lr"], 12), r.metrics["round"]) for r in grid),
                  key=lambda row: [e[:2] for e in expected].index(row[:2]))
    assert real == expected
