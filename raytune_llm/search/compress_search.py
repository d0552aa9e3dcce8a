"""`raytune-llm compress --search`: a small Tune search over the compression settings (which method, the pruning
ratio and recovery, the int8 scheme, the student's depth and the distillation's temperature and alpha) with two
objectives, the run's metric and the variant's latency or size, through the product's searchers (Optuna told the
truth, raytune_llm.search.tell: a multi-objective study) and schedulers, the stability guard watching every
variant that trains. The settings `compress` uses without a search are the first trials (start points), so the
front is never worse than they are.

Each trial builds one variant in its Tune trial's process (search.compress.build_method) and reports its eval
score (never test: test only describes the result), its latency at batch 1 and its size. The trials run one at a
time, so that no trial is timed while another trains beside it; the Pareto front's variants are then measured
again side by side with the original in one process (the numbers the table, the pick and the report show).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from raytune_llm.compression.methods import SCHEMES
from raytune_llm.compression.source import Source
from raytune_llm.core.errors import UserError
from raytune_llm.core.outcomes import is_finite
from raytune_llm.core.yardstick import RECIPE_KEY
from raytune_llm.results.choice import dominates
from raytune_llm.schema import SearchConfig
from raytune_llm.search.compress import PREDICTIONS_FILE, Settings, build_method, record, refuse, tokenizer_dir

OBJECTIVES = {"latency": "latency_ms", "size": "size_mb"}  # the second objective, minimised
PICK_RULES = {"smallest": "size_bytes", "fastest": "latency_ms_median"}  # --pick RULE-within:POINTS
SEARCH_FILE = "search.json"
TRIALS_DIR = ".trials"


def space(methods: list[str], teacher_layers: int) -> dict[str, dict[str, Any]]:
    """The compression settings as search-space params (each active only for its method)."""
    sp: dict[str, dict[str, Any]] = {"method": {"type": "categorical", "choices": list(methods)}}
    prune = [m for m in methods if m.startswith("prune-")]
    if prune:
        sp["ratio"] = {"type": "float", "low": 0.1, "high": 0.8, "when": {"method": prune}}
        sp["recovery"] = {"type": "categorical", "choices": [True, False], "when": {"method": prune}}
    if "int8" in methods:
        sp["scheme"] = {"type": "categorical", "choices": list(SCHEMES), "when": {"method": ["int8"]}}
    if "distill" in methods:
        when = {"method": ["distill"]}
        sp["student_layers"] = {"type": "int", "low": 1, "high": max(1, teacher_layers - 1), "when": when}
        sp["temperature"] = {"type": "float", "low": 1.0, "high": 8.0, "log": True, "when": when}
        sp["alpha"] = {"type": "float", "low": 0.1, "high": 0.9, "when": when}
    return sp


def start(methods: list[str], s: Settings, teacher_layers: int) -> list[dict[str, Any]]:
    """The settings `compress` uses without a search, one point per method: tried first."""
    points = {"int8": {"method": "int8", "scheme": s.scheme},
              "prune-heads": {"method": "prune-heads", "ratio": s.head_ratio, "recovery": s.recovery},
              "prune-magnitude": {"method": "prune-magnitude", "ratio": s.magnitude_ratio, "recovery": s.recovery},
              "distill": {"method": "distill", "student_layers": s.student_layers or max(1, teacher_layers // 2),
                          "temperature": s.temperature, "alpha": s.alpha}}
    return [points[m] for m in methods]


def settings_for(params: dict[str, Any], base: Settings) -> Settings:
    """A trial's sampled params as compression settings."""
    method = params["method"]
    update: dict[str, Any] = {k: params[k] for k in ("recovery", "scheme", "student_layers", "temperature", "alpha")
                              if k in params}
    if "ratio" in params:
        update["head_ratio" if method == "prune-heads" else "magnitude_ratio"] = params["ratio"]
    return replace(base, **update)


def parse_pick(rule: str) -> tuple[str, float]:
    """`smallest-within:0.01` -> ("smallest", 0.01): the smallest (or fastest) front variant whose eval metric is
    within POINTS of the original's."""
    name, _, points = rule.partition("-within:")
    try:
        tolerance = float(points)
    except ValueError:
        tolerance = -1.0
    if name not in PICK_RULES or tolerance < 0:
        raise UserError(f"--pick {rule}: write RULE-within:POINTS, RULE one of {', '.join(PICK_RULES)}, POINTS >= 0 "
                        "on the metric's scale (e.g. smallest-within:0.01)")
    return name, tolerance


def pick(rows: list[dict[str, Any]], metric: str, mode: str, rule: str) -> dict[str, Any] | None:
    """The variant `rule` chooses among measured rows (the original's row among them), or None when no variant is
    within the tolerance. Ties: the better metric."""
    name, tolerance = parse_pick(rule)
    base = next(r for r in rows if r["variant"] == "original")["eval"][metric]
    near = [r for r in rows if r["variant"] != "original" and "eval" in r
            and (r["eval"][metric] >= base - tolerance if mode == "max" else r["eval"][metric] <= base + tolerance)]
    key = PICK_RULES[name]
    sign = -1 if mode == "max" else 1
    return min(near, key=lambda r: (r[key], sign * r["eval"][metric]), default=None)


def pareto(trials: list[dict[str, Any]], metric: str, mode: str, objective: str) -> list[dict[str, Any]]:
    """The healthy trials no other healthy trial dominates (Optuna's front of the same study, read back from the
    trials' reports): failed, errored and stopped-early trials are never on it."""
    objectives = [(metric, mode), (objective, "min")]
    healthy = [t for t in trials if t.get("healthy")]
    front = [t for t in healthy if not any(dominates(o["result"], t["result"], objectives) for o in healthy)]
    return sorted(front, key=lambda t: t["result"][objective])


def _trial(config: dict[str, Any], *, export_dir: str, run_dir: str, out: str, base: dict[str, Any],
           teacher_layers: int) -> None:
    """One Tune trial: one variant built (trained where its method trains, the reports forwarded to Tune's
    scheduler), scored on eval, timed alone, reported with its size."""
    import datasets
    from ray import tune
    from transformers import AutoTokenizer

    from raytune_llm.compression.measure import load_variant, size_on_disk, time_models, timing_batches
    from raytune_llm.compression.source import open_source
    from raytune_llm.core.storage import node_copy
    from raytune_llm.results.export import predict
    from raytune_llm.tasks import get_task

    source = open_source(Path(export_dir), Path(run_dir))
    s = settings_for(config, Settings(**base))
    folder = Path(out) / TRIALS_DIR / tune.get_context().get_trial_id()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # A variant's training reports go to the scheduler; its latency and size exist only once it is built (Tune
    # wants every objective's key in every report: NaN, which no searcher is told as a value).
    pending = {"latency_ms": math.nan, "size_mb": math.nan}
    made = build_method(source, folder, config["method"], s, Path(out) / "original", teacher_layers,
                        on_report=lambda r: tune.report({**pending, **{k: v for k, v in r.items() if _plain(v)}}))
    name, what = list(made.items())[-1]
    if what.get("failed"):  # the guard's stop was the last report Tune got: the searcher is told it failed
        return
    info, train = source.info, source.train
    model = load_variant(folder / name, source.task)
    scores, _ = predict(model, info, train, "eval")
    tokenizer = AutoTokenizer.from_pretrained(node_copy(info.tokenizer_path, info.run_id))
    split = datasets.load_from_disk(node_copy(info.data_path, info.run_id))["eval"]
    singles, batches = timing_batches(split, get_task(source.task).collator(tokenizer), s.timing_rows,
                                      train.eval_batch_size)
    timed = time_models({name: model.to("cpu")}, singles, batches, s.rounds, s.threads, s.compile)[name]
    (folder / "made.json").write_text(json.dumps({"variant": name, **what}, default=str))
    steps = int(what.get("training", {}).get("step") or 0)  # a finished trial's last report: step == total_steps
    tune.report({**scores, "variant": name, "latency_ms": timed["latency_ms_median"],
                 "size_mb": size_on_disk(folder / name) / 2**20, "step": steps, "total_steps": steps})


def _plain(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


def _search_config(methods: list[str], s: Settings, teacher_layers: int, trials: int, metric: str, mode: str,
                   objective: str, searcher: str, scheduler: str) -> SearchConfig:
    from pydantic import ValidationError

    try:
        search = SearchConfig.model_validate({
            "metric": metric, "mode": mode, "num_trials": trials, "space": space(methods, teacher_layers),
            "searcher": {"name": searcher}, "scheduler": {"name": scheduler}, "start": "random",
            "points_to_evaluate": start(methods, s, teacher_layers)[:trials],
            "objectives": [{"metric": OBJECTIVES[objective], "mode": "min"}]})
    except ValidationError as exc:
        raise UserError("; ".join(f"--{'.'.join(map(str, e['loc'][:1]))}: {e['msg']}" for e in exc.errors())) from None
    if not search.scheduler.uses_searcher:
        raise UserError(f"--scheduler {scheduler}: it replaces the searcher with a population; a compression "
                        "search takes fifo, asha or median")
    return search


def search_compress(source: Source, out: Path, methods: list[str], s: Settings, *, trials: int, objective: str,
                    searcher: str = "tpe", scheduler: str = "fifo", rule: str = "smallest-within:0.01",
                    address: str | None = None, force: bool = False) -> dict[str, Any]:
    """Search the compression settings; the front measured side by side; the summary (out/compression.json, with
    the search in out/search.json)."""
    from ray import tune

    from raytune_llm.compression.measure import measure_variants
    from raytune_llm.results.export import check_out
    from raytune_llm.search.compress import _save, _steps
    from raytune_llm.search.driver import connect
    from raytune_llm.search.tell import build_search

    parse_pick(rule)
    check_out(out, force)
    original = source.load_model()
    refuse(methods, source, original, s)
    cfg = source.info.experiment
    metric, mode = cfg.search.metric, cfg.search.mode
    layers = int(original.config.num_hidden_layers)
    search = _search_config(methods, s, layers, trials, metric, mode, objective, searcher, scheduler)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _save(original, out / "original", tokenizer_dir(source))
    del original
    connect(cfg, address)
    # ASHA's and the median rule's budget: the most reports a trial makes (a student's eval rounds, then its result)
    rounds = math.ceil(_steps(source, s.distill_steps, source.train.epochs) / source.train.eval_every) + 1
    trainable = tune.with_resources(tune.with_parameters(
        _trial, export_dir=str(source.export_dir.resolve()), run_dir=str(Path(source.info.run_root).resolve()),
        out=str(out.resolve()), base=asdict(s), teacher_layers=layers), {"cpu": 1})
    print(f"compress --search: {trials} trials over {', '.join(search.space)}; objectives {metric} ({mode}) and "
          f"{OBJECTIVES[objective]} (min); one trial at a time", flush=True)
    grid = tune.Tuner(trainable, tune_config=tune.TuneConfig(
        metric=metric, mode=mode, search_alg=build_search(search, 1), scheduler=search.scheduler.build(
            rounds, search.space), num_samples=trials, max_concurrent_trials=1),
        run_config=tune.RunConfig(name="search", storage_path=str(out.resolve()), verbose=0)).fit()
    done = [_trial_row(result, metric) for result in grid]
    front = pareto(done, metric, mode, OBJECTIVES[objective])
    made = {"original": {"method": "none", "from": str(source.export_dir)}}
    for i, t in enumerate(front):  # the front's variants move out of the trials' folders, named by trial
        name = f"{t['variant']}-{t['trial_id']}"
        shutil.move(out / TRIALS_DIR / t["trial_id"] / t["variant"], out / name)
        made[name] = {**json.loads((out / TRIALS_DIR / t["trial_id"] / "made.json").read_text()), "variant": name,
                      "trial_id": t["trial_id"], "params": t["params"], "front_rank": i}
    shutil.rmtree(out / TRIALS_DIR, ignore_errors=True)
    rows = measure_variants(source, out, made, s, PREDICTIONS_FILE)
    chosen = pick(rows, metric, mode, rule)
    found = {"trials": done, "front": [m for m in made if m != "original"], "pick_rule": rule,
             "pick": chosen["variant"] if chosen else None, "objectives": [metric, OBJECTIVES[objective]],
             "space": search.space and {k: v.model_dump(exclude_none=True) for k, v in search.space.items()},
             "searcher": searcher, "scheduler": scheduler}
    (out / SEARCH_FILE).write_text(json.dumps(found, indent=2, default=str))
    return record(source, out, s, rows, search=found)


def _trial_row(result: Any, metric: str) -> dict[str, Any]:
    """A Tune result as the search's record: params, outcome, and its last report's objectives."""
    last = dict(result.metrics or {})
    config = dict(result.config or {})
    start_point = config.pop(RECIPE_KEY, None)  # a start point's name (compress's settings for its method)
    params = {k: v for k, v in config.items() if not k.startswith("__")}
    reason = str(last.get("stop_reason") or "")  # only a training report (the guard's stop) carries one
    healthy = result.error is None and all(is_finite(last.get(k)) for k in (metric, "latency_ms", "size_mb"))
    return {"trial_id": last.get("trial_id") or Path(result.path).name.split("_")[-2], "params": params,
            "start": start_point,
            "variant": last.get("variant"), "healthy": healthy,
            "outcome": "compressed" if healthy else (reason or (str(result.error)[:200] if result.error else
                                                               "stopped by the scheduler")),
            "result": {k: last.get(k) for k in (metric, "latency_ms", "size_mb")}}

