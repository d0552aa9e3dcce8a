"""Cross-field rules of an experiment: settings that are each valid alone but break together, caught by
`validate` (and before any search) instead of by a crash mid-search. Each problem names its YAML path and the fix.

Rules that involve the search space are checked for every value the space can sample: a lever that is off in
`train:` but searched in the space is checked against each PEFT method it can be sampled with.
"""

from __future__ import annotations

from typing import Any

from raytune_llm.core.errors import Problem
from raytune_llm.schema.experiment import CategoricalParam, ExperimentConfig, FloatParam, IntParam, Param, PeftMethod
from raytune_llm.schema.space import bounds_for, candidate_values
from raytune_llm.schema.tracking import problems as tracking_problems
from raytune_llm.searchers.grid import grid_size, param_values

# Stability levers and the PEFT methods they break, with why.
_LEVER_LIMITS: dict[str, tuple[tuple[PeftMethod, ...], str]] = {
    "reinit_top_layers": ((PeftMethod.lora, PeftMethod.prompt_tuning, PeftMethod.prefix_tuning),
                          "re-initialised layers would stay random: PEFT methods freeze the base model's weights"),
    "layerwise_lr_decay": ((PeftMethod.prompt_tuning, PeftMethod.prefix_tuning),
                           "the soft prompt sits below the embeddings and would get the smallest learning rate"),
    "freeze_bottom_layers": ((PeftMethod.prompt_tuning, PeftMethod.prefix_tuning),
                             "freezing the embeddings freezes the soft prompt, the only thing these methods train"),
    "fgm_epsilon": ((PeftMethod.lora, PeftMethod.prompt_tuning, PeftMethod.prefix_tuning),
                    "FGM perturbs the word embeddings along their gradient, which PEFT methods do not compute"),
}


def _is_on(lever: str, value: Any) -> bool:
    return value is not None and value != 0 and not (lever == "layerwise_lr_decay" and value == 1)


def _active_with(param: Param, method: PeftMethod) -> bool:
    """Whether the param can be sampled while peft.method is `method` (conditions on other params: maybe)."""
    allowed = (param.when or {}).get("peft.method")
    if allowed is None:
        return True
    return method.value in (allowed if isinstance(allowed, list) else [allowed])


def _methods(cfg: ExperimentConfig) -> list[PeftMethod]:
    p = cfg.search.space.get("peft.method")
    return [PeftMethod(m) for m in p.choices] if isinstance(p, CategoricalParam) else [cfg.train.peft.method]


def lever_problems(cfg: ExperimentConfig) -> list[Problem]:
    problems = []
    for lever, (broken, why) in _LEVER_LIMITS.items():
        param = cfg.search.space.get(lever)
        for method in _methods(cfg):
            if method not in broken:
                continue
            if param is not None and _active_with(param, method):
                if any(_is_on(lever, v) for v in candidate_values(param)):
                    problems.append(Problem(f"search.space.{lever}", f"can be sampled with peft.method "
                                            f"{method.value}: {why}; add `when: {{peft.method: full}}`"))
                    break
            elif param is None and _is_on(lever, getattr(cfg.train, lever)):
                problems.append(Problem(f"train.{lever}", f"does not work with peft.method {method.value}: {why}; "
                                        "turn it off or use peft.method: full"))
                break
    return problems


def _batch_values(param: Param) -> list[int] | None:
    """Every batch size the param can sample, or None when there are too many to list (log-scaled ints)."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if isinstance(param, IntParam) and not param.log:
        return list(range(param.low, param.high + 1, param.step))
    return None


def batch_values(cfg: ExperimentConfig) -> list[int]:
    """The global batch sizes a trial can get (a log-scaled range: its largest, the one that matters for memory)."""
    batch = cfg.search.space.get("batch_size")
    if batch is None or isinstance(batch, FloatParam):
        return [cfg.train.batch_size]
    values = _batch_values(batch)
    return [int(v) for v in values] if values is not None else [int(batch.high)]


def resource_problems(cfg: ExperimentConfig) -> list[Problem]:
    problems = []
    res, workers = cfg.resources, cfg.resources.num_workers
    if res.executor == "tune" and workers > 1:
        problems.append(Problem("resources.executor", f"tune trains a trial in one process; num_workers={workers} "
                                "needs executor: train (or auto)"))
    if workers > 1 and res.gpus_per_worker and res.gpus_per_worker != int(res.gpus_per_worker):
        problems.append(Problem("resources.gpus_per_worker", f"{res.gpus_per_worker} GPU per worker with "
                                f"num_workers={workers}: two ranks of one trial could share a GPU, which NCCL "
                                "refuses; use whole GPUs per worker, or num_workers: 1 to pack trials"))
    batch = cfg.search.space.get("batch_size")
    if batch is None:
        if cfg.train.batch_size % workers:
            problems.append(Problem("train.batch_size", f"global batch {cfg.train.batch_size} must divide evenly "
                                    f"over resources.num_workers={workers}; use a multiple of {workers}"))
    elif isinstance(batch, FloatParam):
        problems.append(Problem("search.space.batch_size", "must be an int or categorical param"))
    elif workers > 1:
        values = _batch_values(batch)
        bad = "a log-scaled range" if values is None else [v for v in values if v % workers]
        if bad:
            problems.append(Problem("search.space.batch_size", f"every sampled batch must divide over "
                                    f"resources.num_workers={workers} ({bad} does not); use choices that are "
                                    f"multiples of {workers}, or step: {workers}"))
    return problems + micro_batch_problems(cfg)


def micro_batch_problems(cfg: ExperimentConfig) -> list[Problem]:
    micro, workers, problems = cfg.train.micro_batch_size, cfg.resources.num_workers, []
    if micro is None:
        return problems
    if micro == "auto" and workers > 1:
        problems.append(Problem("train.micro_batch_size", f"auto halves a worker's micro-batch when it runs out of "
                                f"memory, which one DDP rank of num_workers={workers} cannot do alone; give a "
                                "number, or use num_workers: 1"))
    if cfg.train.fgm_epsilon or "fgm_epsilon" in cfg.search.space:
        problems.append(Problem("train.micro_batch_size", "FGM's adversarial pass needs the whole batch's gradient "
                                "at once; remove micro_batch_size or fgm_epsilon"))
    return problems


# Levers that hold or change parameters in ways FSDP's sharded parameters do not support (yet), with why.
_UNSHARDABLE = {
    "fgm_epsilon": "FGM perturbs the whole embedding table along its gradient, which FSDP holds in shards",
    "l2sp": "L2-SP keeps a copy of every pretrained weight beside the sharded one",
    "freeze_bottom_layers": "frozen layers inside FSDP shard units are not supported here",
    "unfreeze_every": "gradual unfreezing changes which sharded parameters train mid-run",
}


def sharding_problems(cfg: ExperimentConfig) -> list[Problem]:
    if cfg.resources.strategy != "fsdp":
        return []
    problems = []
    if cfg.resources.num_workers < 2:
        problems.append(Problem("resources.strategy", "fsdp shards a trial over its workers; with num_workers=1 "
                                "there is nothing to shard over: use ddp, or num_workers >= 2"))
    if any(m != PeftMethod.full for m in _methods(cfg)):
        where = "search.space.peft.method" if "peft.method" in cfg.search.space else "train.peft.method"
        problems.append(Problem(where, "resources.strategy: fsdp shards full fine-tuning; a PEFT method trains a "
                                "sliver of the weights and fits with ddp (or quantization for a large base)"))
    for lever, why in _UNSHARDABLE.items():
        if _is_on(lever, getattr(cfg.train, lever)) or lever in cfg.search.space:
            problems.append(Problem(f"train.{lever}", f"does not work with resources.strategy: fsdp: {why}; "
                                    "turn it off or use strategy: ddp"))
    if cfg.train.precision == "fp16" or "precision" in cfg.search.space:
        problems.append(Problem("train.precision", "fp16's gradient scaler is not wired for FSDP's sharded gradients "
                                "here; use bf16 (or auto) with resources.strategy: fsdp, and do not search it"))
    if cfg.task.value == "causal_lm" and cfg.generation.eval_samples:
        problems.append(Problem("generation.eval_samples", "generated answers differ in length from worker to "
                                "worker, which FSDP's lock-step forward passes cannot follow; set it to 0 with "
                                "resources.strategy: fsdp (eval loss and perplexity are still measured)"))
    return problems


def quantization_problems(cfg: ExperimentConfig) -> list[Problem]:
    if cfg.train.peft.quantization is None:
        return []
    import importlib.util

    problems = []
    if PeftMethod.full in _methods(cfg):
        where = "search.space.peft.method" if "peft.method" in cfg.search.space else "train.peft.method"
        problems.append(Problem(where, "full fine-tuning trains the weights train.peft.quantization freezes in "
                                f"{cfg.train.peft.quantization.bits} bits; use PEFT methods only, or remove "
                                "the quantization"))
    if not cfg.resources.gpus_per_worker:
        problems.append(Problem("train.peft.quantization", "bitsandbytes' 4-/8-bit weights run on CUDA GPUs; set "
                                "resources.gpus_per_worker, or remove the quantization"))
    if importlib.util.find_spec("bitsandbytes") is None:
        problems.append(Problem("train.peft.quantization", "needs bitsandbytes, which is not installed: "
                                "pip install 'raytune-llm[quant]'"))
    return problems


def data_problems(cfg: ExperimentConfig) -> list[Problem]:
    problems = []
    if cfg.data.eval_split == cfg.data.train_split:
        problems.append(Problem("data.eval_split", "must differ from data.train_split"))
    generated = ("eval_exact_match", "eval_bleu", "eval_rouge_l")
    if cfg.search.metric == "eval_exact_match" and not cfg.data.answer_column:
        problems.append(Problem("search.metric", "eval_exact_match compares generated answers with "
                                "data.answer_column; set data.answer_column"))
    if cfg.search.metric in generated and cfg.generation.eval_samples == 0:
        problems.append(Problem("generation.eval_samples", f"is 0, so {cfg.search.metric} is never measured; "
                                "set it to the number of eval rows to answer (e.g. 32)"))
    return problems


def _point_problem(param: Param, value: Any, point: dict[str, Any]) -> str | None:
    if isinstance(param, CategoricalParam):
        return None if value in param.choices else f"{value!r} is not one of its choices {param.choices}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    low, high, _ = bounds_for(param, point)
    if not low <= value <= high:
        return f"{value!r} is outside its range [{low}, {high}]"
    return None


def searcher_problems(cfg: ExperimentConfig) -> list[Problem]:
    s, problems = cfg.search, []
    for i, point in enumerate(s.points_to_evaluate):
        for name, value in point.items():
            where = f"search.points_to_evaluate[{i}].{name}"
            if name not in s.space:
                problems.append(Problem(where, "is not a param in search.space; a point sets searched params only "
                                        "(fixed settings belong in train:)"))
            elif (why := _point_problem(s.space[name], value, point)) is not None:
                problems.append(Problem(where, why))
    if s.pareto_tolerance and not s.objectives:
        problems.append(Problem("search.pareto_tolerance", "has no effect without search.objectives; add a further "
                                "objective (e.g. {metric: trainable_params, mode: min}) or remove it"))
    if s.searcher.name == "grid":
        for name, param in s.space.items():
            if param_values(param) is None:
                problems.append(Problem(f"search.space.{name}", "grid search needs a finite set of values: give "
                                        "`choices`, or a `step` without `log: true`"))
        if not problems and s.space and s.num_trials != (size := grid_size(s.space)):
            problems.append(Problem("search.num_trials", f"is {s.num_trials}, but the grid has {size} points; set "
                                    f"it to {size} to try each once"))
        if s.points_to_evaluate:
            problems.append(Problem("search.points_to_evaluate", "grid search already tries every combination; "
                                    "remove the points or choose another searcher"))
    return problems


def scheduler_problems(cfg: ExperimentConfig) -> list[Problem]:
    check = getattr(cfg.search.scheduler, "problems", None)
    if check is None:
        return []
    return [Problem(path, message) for path, message in check(cfg.search.space, cfg.resources.in_process)]


def experiment_problems(cfg: ExperimentConfig) -> list[Problem]:
    """Every cross-field problem of a schema-valid experiment."""
    return (resource_problems(cfg) + lever_problems(cfg) + quantization_problems(cfg) + sharding_problems(cfg)
            + data_problems(cfg)
            + searcher_problems(cfg)
            + scheduler_problems(cfg) + tracking_problems(cfg.tracking))
