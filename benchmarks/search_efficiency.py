"""Does the search beat random search, and by how much compute? Replays recorded learning curves through the real
searcher and scheduler objects in simulated time, many search seeds per arm.

Curves: the runs recorded with the guard off for judging the stability guard (benchmarks/recordings/*.json: MiniLM
on sst2, bbc_news, paraphrase_imbalanced, rotten_tomatoes and stsb_regression; full fine-tuning and LoRA at 14
seeded random configs, the same on every task, plus 3 that diverge), every step's loss and gradient norm and every
evaluation. A proposed config runs the recorded run of its PEFT method nearest in log learning rate (a
nearest-neighbour surrogate: coarse, but every number it yields happened). The space is the same for every arm:
`peft.method` in {full, lora} x `optimizer.lr` log-uniform in [1e-5, 1e-1], one range for both methods as a user
who does not know better would write it.

The searchers are `raytune_llm.search.tell.build_search` (what `search` runs: Optuna samplers behind Tune's
OptunaSearch, told the truth about stopped trials), the schedulers `raytune_llm.schedulers` (Ray's ASHA, sparing
the default recipe's trial), the guard `raytune_llm.training.stability.StabilityGuard` on every recorded step (as
in benchmarks/guard_quality.py). Two trials run at once; time advances one evaluation round at a time; compute is
counted in optimizer steps (and seconds).

The arms start from random trials (`search.start: random`), except the portfolio arms (`search.start:
portfolio`): the default recipe of the first sampled method first (the yardstick, run to its end), then the
portfolio's recipes clipped into the space, then TPE. Their portfolio is learnt with
`raytune_llm.recipes.greedy_portfolio` (benchmarks/learn_portfolio.py) on the recordings of every task but the
one searched (leave one task out: what a user's new task gets), on all of them (in-sample, for contrast), or is
empty (the library's default recipes only).

Per arm, over the search seeds: compute until the best healthy score so far reaches random search's expected best
at budget B (B = 12 full trials; "C/B", median, and the share of seeds within B/3; "s/B" the same in seconds:
the recorded wall time per step plus STARTUP_S per trial, which many short ASHA trials pay again and again), the
share of compute spent on runs that ended failed, the guard's precision/recall against the recordings' labels
and how often it stopped a run of the task's top 10%, the best score at budget B, the held-out score of what
the search would export at B: the picked run's checkpoint at the picked evaluation, scored on the test split
(`record_curves.py --test-scores` adds these to the recordings; the command names any picked run still without),
and the pick's gain over the default recipe (its nearest recorded run, at its best evaluation): by eval score
("gain@B", mean; ">=dflt", the seeds whose pick is at least as good) and by test score ("t.gain").
`benchmarks/live_search.py` runs the real product on sst2 for two of the arms and puts each live search beside its
simulation.

    python benchmarks/search_efficiency.py [--seeds 10] [--tasks synthetic,sst2,...] [--arms portfolio,...]
                                           [--out benchmarks/results/search_efficiency.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import learn_portfolio  # noqa: E402
from guard_quality import OFF, replay  # noqa: E402

from raytune_llm.schema import SearchConfig  # noqa: E402

BUDGET_TRIALS = 12  # B: random search's budget, in full trials
# A trial's fixed start-up cost in this product with single-worker trials in-process (benchmarks/overhead.py, 2 cores:
# 3.2 s for a process's first trial, 0.06-0.08 s for each later one; about 0.3 s a trial over a 36-trial search with
# two processes): what many short ASHA trials pay again and again, so compute in seconds counts it; steps do not.
# (Ray Train trials pay 10.8-13.1 s: benchmarks/README.md.)
STARTUP_S = 0.3
MAX_TRIALS = 3 * BUDGET_TRIALS  # every arm may run up to 3 B of compute
CONCURRENT = 2
SPACE = {"peft.method": {"type": "categorical", "choices": ["full", "lora"]},
         "optimizer.lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}}
# Not the same space (it encodes what the recordings taught: LoRA wants ~10x full fine-tuning's rate), shown apart.
BY_METHOD = {"peft.method": SPACE["peft.method"],
             "optimizer.lr": {**SPACE["optimizer.lr"], "low": 1e-5, "high": 1e-3,
                              "by": {"peft.method": {"lora": {"low": 3e-4, "high": 3e-2}}}}}
ARMS: dict[str, dict[str, Any]] = {
    "random (full trials)": {"searcher": "random", "scheduler": "fifo", "guard": None},
    "random + ASHA": {"searcher": "random", "scheduler": "asha", "guard": None},
    "TPE": {"searcher": "tpe", "scheduler": "fifo", "guard": None},
    "TPE + ASHA": {"searcher": "tpe", "scheduler": "asha", "guard": None},
    "TPE + ASHA, Ray's feedback (stopped = complete)": {"searcher": "tpe", "scheduler": "asha", "guard": None,
                                                         "ray_feedback": True},
    "TPE + ASHA + guard": {"searcher": "tpe", "scheduler": "asha", "guard": {}},
    "TPE + ASHA + guard without chance_level": {"searcher": "tpe", "scheduler": "asha",
                                                "guard": {"chance_level": {"enabled": False}}},
    "TPE + ASHA + guard, non_finite only": {"searcher": "tpe", "scheduler": "asha", "guard": OFF},
    "(per-method lr ranges) TPE + ASHA + guard": {"searcher": "tpe", "scheduler": "asha", "guard": {},
                                                  "space": BY_METHOD},
    # Portfolio starts (search.start: portfolio): the default recipe of the first sampled method (full fine-tuning:
    # the yardstick, which ASHA never stops), then the portfolio's recipes, clipped into the space, then TPE.
    "portfolio (default recipes only) TPE + ASHA + guard": {"searcher": "tpe", "scheduler": "asha", "guard": {},
                                                            "start": "portfolio", "portfolio": "none"},
    "portfolio (leave one task out) TPE + ASHA + guard": {"searcher": "tpe", "scheduler": "asha", "guard": {},
                                                          "start": "portfolio", "portfolio": "loo"},
    "portfolio (all tasks, in-sample) TPE + ASHA + guard": {"searcher": "tpe", "scheduler": "asha", "guard": {},
                                                            "start": "portfolio", "portfolio": "all"},
    # What limits the portfolio start under ASHA (grace period 1): a recipe slower than the yardstick at the first
    # rung is stopped there. The same leave-one-task-out start under gentler schedulers.
    "portfolio (leave one task out) TPE + ASHA grace 3 + guard": {
        "searcher": "tpe", "scheduler": "asha", "scheduler_args": {"grace_period": 3}, "guard": {},
        "start": "portfolio", "portfolio": "loo"},
    "portfolio (leave one task out) TPE + hyperband + guard": {"searcher": "tpe", "scheduler": "hyperband",
                                                               "guard": {}, "start": "portfolio", "portfolio": "loo"},
    "portfolio (leave one task out) TPE + guard (full trials)": {"searcher": "tpe", "scheduler": "fifo", "guard": {},
                                                                 "start": "portfolio", "portfolio": "loo"},
    # What limits the leave-one-task-out portfolio: the greedy rule stops once each training task has its best run
    # in it; filled up to k by mean score instead (a benchmark variant, learn_portfolio.learn(fill=True)).
    "portfolio (leave one task out, filled) TPE + ASHA + guard": {"searcher": "tpe", "scheduler": "asha",
                                                                  "guard": {}, "start": "portfolio",
                                                                  "portfolio": "loo", "fill": True},
    "portfolio (leave one task out, filled) TPE + ASHA grace 3 + guard": {
        "searcher": "tpe", "scheduler": "asha", "scheduler_args": {"grace_period": 3}, "guard": {},
        "start": "portfolio", "portfolio": "loo", "fill": True},
}
for _arm in ARMS.values():
    _arm.setdefault("start", "random")  # the arms above the portfolio ones: random start-up trials, as before
PORTFOLIO_SIZE = 3  # search.portfolio_size's default: the default recipe and two learnt recipes


def nearest(runs: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    mine = [r for r in runs if r["config"]["peft.method"] == params["peft.method"]]
    return min(mine, key=lambda r: abs(math.log10(r["config"]["optimizer.lr"]) - math.log10(params["optimizer.lr"])))


def recorded(path: Path) -> SimpleNamespace:
    rec = json.loads(path.read_text())
    return SimpleNamespace(meta=rec["meta"], runs=rec["runs"], run_for=lambda p: nearest(rec["runs"], p))


def synthetic() -> SimpleNamespace:
    import synthetic_curves

    return SimpleNamespace(meta=synthetic_curves.META, runs=synthetic_curves.reference_runs(),
                           run_for=synthetic_curves.run_for)


def simulate(arm: dict[str, Any], rec: SimpleNamespace, seed: int, concurrent: int = CONCURRENT,
             max_trials: int = MAX_TRIALS) -> dict:
    """One search: returns its timeline of (steps used, best healthy score so far, the run and evaluation round it
    came from: what export would ship) and its trials."""
    from ray.tune.schedulers import TrialScheduler

    from raytune_llm.search.tell import build_search

    runs, metric = rec.runs, rec.meta["objective"]
    # Sized like a user's search of B trials (TPE's random start-up: a third of it); it may run on to 3 B.
    cfg = SearchConfig.model_validate({"metric": metric, "mode": "max", "num_trials": BUDGET_TRIALS,
                                       "space": arm.get("space", SPACE),
                                       "searcher": {"name": arm["searcher"], "seed": seed},
                                       "scheduler": {"name": arm["scheduler"], **arm.get("scheduler_args", {})},
                                       **({"start": arm["start"]} if "start" in arm else {}),
                                       "portfolio_size": PORTFOLIO_SIZE})
    # arm["recipes"]: the portfolio that replaces the shipped one (main() learns it per task); none: the shipped one
    search = build_search(cfg, concurrent, portfolio=arm.get("recipes"))
    if arm.get("ray_feedback"):  # Ray's own OptunaSearch.on_trial_complete, for the ablation
        from ray.tune.search.optuna import OptunaSearch

        search.on_trial_complete = lambda *a, **k: OptunaSearch.on_trial_complete(search, *a, **k)
    rounds = len(runs[0]["evals"])
    scheduler = cfg.scheduler.build(rounds)
    scheduler.set_search_properties(metric, "max")
    used, started, trials, running, timeline = 0, 0, [], [], [(0, None, None)]
    seconds, clock = 0.0, [(0.0, None, None)]  # the same, in seconds of compute (start-up included)
    board: dict[int, float] = {}  # the search's population board, as the guard's chance-level rule consults it
    while started < max_trials or running:
        while len(running) < concurrent and started < max_trials:
            tid = f"t{started}"
            params = search.suggest(tid)
            run = rec.run_for(params)
            # The trial as the scheduler sees it: its config says which recipe it runs (the default recipe's is spared).
            handle = SimpleNamespace(trial_id=tid, config=params)
            scheduler.on_trial_add(None, handle)
            # Where the guard would stop this run, given the trials started before it (the replay knows their whole
            # runs: a slight advantage over a live board, which knows only how far they got).
            stop = replay(run, rec.meta, arm["guard"], board) if arm["guard"] is not None else ("", 0)
            trial = {"id": tid, "params": params, "run": run, "round": 0, "step": 0, "stop": stop, "scores": [],
                     "end": None, "handle": handle}
            trials.append(trial)
            running.append(trial)
            started += 1
            seconds += STARTUP_S
        for trial in list(running):
            run, k = trial["run"], trial["round"]
            e = run["evals"][k]
            reason, stop_step = trial["stop"]
            result = {metric: e[metric], "training_iteration": k + 1, "step": e["step"],
                      "total_steps": run["total_steps"], "stop_reason": ""}
            per_step = run.get("wall_s", 1.3 * run["total_steps"]) / run["total_steps"]
            if reason and stop_step <= e["step"]:  # the guard stops it inside this round
                used += stop_step - trial["step"]
                seconds += (stop_step - trial["step"]) * per_step
                result.update({metric: 0.0, "step": stop_step, "stop_reason": reason})
                trial.update(end="unstable", scores=[])
            else:
                used += e["step"] - trial["step"]
                seconds += (e["step"] - trial["step"]) * per_step
                trial["scores"].append(e[metric])
            trial["step"], trial["round"] = result["step"], k + 1
            search.on_trial_result(trial["id"], result)
            action = scheduler.on_trial_result(None, trial["handle"], result)
            if trial["end"] or action == TrialScheduler.STOP or k + 1 == len(run["evals"]):
                trial["end"] = trial["end"] or ("done" if k + 1 == len(run["evals"]) else "pruned")
                search.on_trial_complete(trial["id"], result)
                scheduler.on_trial_complete(None, trial["handle"], result)
                running.remove(trial)
            # A trial's scores count until the guard stops it (its checkpoints are then not what a user exports).
            scored = [(s, t["run"], i) for t in trials for i, s in enumerate(t["scores"])]
            best, pick_run, pick_round = max(scored, key=lambda c: c[0], default=(None, None, 0))
            pick = (pick_run, pick_round) if pick_run is not None else None
            timeline.append((used, best, pick))
            clock.append((seconds, best, pick))
    return {"timeline": timeline, "clock": clock, "trials": trials}


Timeline = list[tuple[float, float | None, tuple[dict, int] | None]]  # (compute used, best so far, its run + round)


def at(timeline: Timeline, steps: float) -> tuple[float | None, tuple[dict, int] | None]:
    """The best score within `steps` of compute, and the run and round it came from."""
    best, pick = None, None
    for used, b, p in timeline:
        if used > steps:
            break
        best, pick = b, p
    return best, pick


def best_at(timeline: Timeline, steps: float) -> float | None:
    return at(timeline, steps)[0]


def test_score(pick: tuple[dict, int] | None) -> float | None:
    """The held-out score of what the search would export at that moment: the picked run's checkpoint at the
    picked round, scored on the test split (benchmarks/record_curves.py --test-scores; None where not recorded)."""
    if pick is None or "test_scores" not in pick[0]:
        return None
    return pick[0]["test_scores"][pick[1]]


def to_target(timeline: Timeline, target: float) -> float:
    return next((used for used, b, _ in timeline if b is not None and b >= target), math.inf)


def default_recipe_point(space: dict[str, Any]) -> dict[str, Any]:
    """The default recipe of the space's first PEFT method, clipped into the space: the yardstick a portfolio start
    runs first (raytune_llm.recipes.start_points), as a point of the space."""
    from raytune_llm.recipes import clip_into, library
    from raytune_llm.schema import TrainConfig
    from raytune_llm.schema.space import peft_methods_of

    cfg = SearchConfig.model_validate({"metric": "eval_accuracy", "mode": "max", "space": space})
    method = peft_methods_of(cfg.space, TrainConfig())[0]
    point = clip_into(library().default(method), cfg.space, TrainConfig())
    assert point is not None
    return point


def portfolios(arms: dict[str, dict[str, Any]], task: str, all_recs: dict[str, Any]) -> dict[str, list]:
    """The portfolio each portfolio arm starts from on `task`: learnt (learn_portfolio.learn) on every recorded task
    but this one ("loo"), on all of them ("all", in-sample), or none (only the default recipes)."""
    out = {}
    for name, arm in arms.items():
        kind = arm.get("portfolio")
        if kind is None:
            continue
        learnt_on = {"loo": [t for t in all_recs if t != task], "all": list(all_recs), "none": []}[kind]
        out[name] = (learn_portfolio.learn(all_recs, learnt_on, PORTFOLIO_SIZE, fill=arm.get("fill", False))
                     if learnt_on else [])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--tasks", default="synthetic,sst2,bbc_news,paraphrase_imbalanced,rotten_tomatoes,"
                                           "stsb_regression")
    parser.add_argument("--arms", default="", help="comma-separated parts of arm names (default: every arm; "
                                                   "random (full trials) always runs: it sets the target)")
    parser.add_argument("--recordings", type=Path, default=REPO / "benchmarks" / "recordings")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "search_efficiency.json")
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    wanted = [w for w in args.arms.split(",") if w]
    arms = {name: arm for name, arm in ARMS.items()
            if not wanted or name == "random (full trials)" or any(w in name for w in wanted)}
    all_recs = learn_portfolio.load(args.recordings)  # every recorded task: what the portfolios are learnt on
    report: dict[str, Any] = {"budget_trials": BUDGET_TRIALS, "seeds": args.seeds, "space": SPACE,
                              "portfolio_size": PORTFOLIO_SIZE, "recorded_tasks": list(all_recs), "tasks": {}}
    for task in args.tasks.split(","):
        rec = synthetic() if task == "synthetic" else recorded(args.recordings / f"{task}.json")
        runs, metric = rec.runs, rec.meta["objective"]
        finals = sorted((max(e[metric] for e in r["evals"]) for r in runs), reverse=True)
        top10 = finals[max(0, len(runs) // 10 - 1)]  # a run this good or better is in the task's top 10%
        budget = BUDGET_TRIALS * runs[0]["total_steps"]
        # The default recipe's run (the nearest recorded one), to its end: what a user gets without searching.
        default_run = rec.run_for(default_recipe_point(SPACE))
        default_round = max(range(len(default_run["evals"])), key=lambda i: default_run["evals"][i][metric])
        default_score = default_run["evals"][default_round][metric]
        default_test = test_score((default_run, default_round))
        starts = portfolios(arms, task, all_recs)
        results: dict[str, list[dict]] = {}
        for name, arm in arms.items():
            arm = {**arm, "recipes": starts[name]} if name in starts else arm
            results[name] = [simulate(arm, rec, seed) for seed in range(args.seeds)]
        baseline = [best_at(s["timeline"], budget) for s in results["random (full trials)"]]
        target = statistics.fmean(b for b in baseline if b is not None)
        # B in seconds: what random search's 12 full trials took, on average over the seeds.
        budget_s = statistics.fmean(s["clock"][-1][0] * BUDGET_TRIALS / MAX_TRIALS
                                    for s in results["random (full trials)"])
        rows, needed = {}, set()
        if default_test is None and task != "synthetic":
            needed.add(default_run["config"].get("seed", -1))
        for name, sims in results.items():
            ratios = [to_target(s["timeline"], target) / budget for s in sims]
            median = statistics.median(ratios)
            median_s = statistics.median(to_target(s["clock"], target) / budget_s for s in sims)
            at_b = [b for s in sims if (b := best_at(s["timeline"], budget)) is not None]
            picks = [at(s["timeline"], budget)[1] for s in sims]
            tests = [t for p in picks if (t := test_score(p)) is not None]
            needed.update(p[0]["config"].get("seed", -1) for p in picks if p is not None and test_score(p) is None)
            # The pick against the default recipe run to its end: by the eval score the search picks by, and by
            # the held-out score of what each would export.
            gains = [(b if b is not None else -math.inf) - default_score
                     for s in sims for b in [best_at(s["timeline"], budget)]]
            test_gains = [t - default_test for p in picks if default_test is not None
                          and (t := test_score(p)) is not None]
            steps_failed = steps_all = stopped = true_stops = failed_runs = top_stopped = failed_cut = 0
            for s in sims:
                for t in s["trials"]:
                    steps_all += t["step"]
                    failed = t["run"]["end"] == "failed"
                    steps_failed += t["step"] if failed else 0
                    failed_runs += failed
                    failed_cut += failed and t["end"] != "done"
                    if t["end"] == "unstable":
                        stopped += 1
                        true_stops += failed
                        top_stopped += max(e[metric] for e in t["run"]["evals"]) >= top10
            rows[name] = {
                "compute_to_target_median_B": median if median < math.inf else None,
                "seconds_to_target_median_B": median_s if median_s < math.inf else None,
                "seeds_within_B/3": sum(r <= 1 / 3 for r in ratios), "seeds_reached": sum(r < math.inf for r in ratios),
                "failed_compute_share": steps_failed / steps_all,
                "guard_precision": true_stops / stopped if stopped else None,
                "guard_recall": true_stops / failed_runs if failed_runs and arms[name]["guard"] is not None else None,
                "failed_runs_cut_short": failed_cut / failed_runs if failed_runs else None,
                "top10_runs_stopped": top_stopped,
                "best_at_B_mean": statistics.fmean(at_b) if at_b else None,
                "test_at_B_mean": statistics.fmean(tests) if tests else None, "test_at_B_seeds": len(tests),
                "gain_over_default_at_B_mean": statistics.fmean(gains) if all(map(math.isfinite, gains)) else None,
                "seeds_pick_at_least_default": sum(g >= -1e-12 for g in gains),
                "test_gain_over_default_mean": statistics.fmean(test_gains) if test_gains else None,
                "test_gain_seeds": len(test_gains),
                "seeds_pick_test_at_least_default": sum(g >= -1e-12 for g in test_gains),
                "ratios": [round(r, 3) if r < math.inf else None for r in ratios],
                **({"portfolio": [r.model_dump(mode="json") for r in starts[name]]} if name in starts else {}),
            }
        report["tasks"][task] = {"metric": metric, "target": target, "budget_steps": budget,
                                 "budget_seconds": budget_s, "arms": rows,
                                 "default_recipe_run": {"config": default_run["config"], "best_eval": default_score,
                                                        "test": default_test},
                                 "picked_runs_without_test_score": sorted(needed)}
        print(f"\n{task}: target = random search's expected best {metric} at B = {target:.3f} "
              f"(B = {BUDGET_TRIALS} full trials = {budget} steps; {args.seeds} search seeds per arm); the default "
              f"recipe's run: best {default_score:.3f}, test {'-' if default_test is None else f'{default_test:.3f}'}")
        for kind, label in (("loo", "leave-one-task-out"), ("all", "in-sample")):
            for fill in (False, True):
                recipes = next((starts[n] for n in starts if arms[n]["portfolio"] == kind
                                and arms[n].get("fill", False) == fill), None)
                if recipes is not None:
                    print(f"  {label} portfolio{', filled' if fill else ''}: "
                          f"{', '.join(r.name for r in recipes) or '-'} "
                          f"(learnt on {', '.join(recipes[0].learnt_on) if recipes else '-'})")
        print(f"{'arm':66} {'C/B med':>8} {'s/B med':>8} {'<=B/3':>6} {'failed%':>8} {'cut':>5} {'g.prec':>7} "
              f"{'g.rec':>6} {'top10x':>6} {'best@B':>7} {'test@B':>7} {'gain@B':>7} {'>=dflt':>6} {'t.gain':>7}")
        for name, row in rows.items():
            def fmt(v: float | None) -> str:
                return "-" if v is None else f"{v:.3f}"
            print(f"{name:66} {fmt(row['compute_to_target_median_B']):>8} {fmt(row['seconds_to_target_median_B']):>8} "
                  f"{row['seeds_within_B/3']:>3}/{args.seeds:<2} {100 * row['failed_compute_share']:7.1f}% "
                  f"{fmt(row['failed_runs_cut_short']):>5} "
                  f"{fmt(row['guard_precision']):>7} {fmt(row['guard_recall']):>6} {row['top10_runs_stopped']:>6} "
                  f"{fmt(row['best_at_B_mean']):>7} {fmt(row['test_at_B_mean']):>7} "
                  f"{fmt(row['gain_over_default_at_B_mean']):>7} "
                  f"{row['seeds_pick_at_least_default']:>3}/{args.seeds:<2} "
                  f"{fmt(row['test_gain_over_default_mean']):>7}")
        if task != "synthetic" and needed:
            seeds = ",".join(map(str, sorted(needed)))
            print(f"  (no test score recorded for the picked runs with seeds {seeds}: "
                  f"python benchmarks/record_curves.py --test-scores --tasks {task} --only {seeds})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
