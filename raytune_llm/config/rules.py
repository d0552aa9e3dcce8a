"""Cross-field rules of an experiment that no single plug-in owns: settings that are each valid alone but break
together, caught by `validate` (and before any search) instead of by a crash mid-search. Each problem names its
YAML path and the fix. What a plug-in (searcher, scheduler, executor, tracker, detector, task, PEFT method) cannot
be combined with is its own `problems(cfg)` (raytune_llm.config.plugins).

Rules that involve the search space are checked for every value the space can sample: a lever that is off in
`train:` but searched in the space is checked against each PEFT method it can be sampled with.
"""

from __future__ import annotations

from typing import Any

from raytune_llm.core.conditions import allowed_values
from raytune_llm.core.errors import Problem
from raytune_llm.schema import CategoricalParam, ExperimentConfig, FloatParam, Param, PeftMethod
from raytune_llm.schema.space import batch_param_values, bounds_for, candidate_values, sampled_peft_methods

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
    return method.value in allowed_values(allowed)


def lever_problems(cfg: ExperimentConfig) -> list[Problem]:
    problems = []
    for lever, (broken, why) in _LEVER_LIMITS.items():
        param = cfg.search.space.get(lever)
        for method in sampled_peft_methods(cfg):
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
    if any(m != PeftMethod.full for m in sampled_peft_methods(cfg)):
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


def _point_problem(param: Param, value: Any, point: dict[str, Any]) -> str | None:
    if isinstance(param, CategoricalParam):
        return None if value in param.choices else f"{value!r} is not one of its choices {param.choices}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    low, high, _ = bounds_for(param, point)
    if not low <= value <= high:
        return f"{value!r} is outside its range [{low}, {high}]"
    return None


def worker_problems(cfg: ExperimentConfig) -> list[Problem]:
    """Several workers per trial (DDP ranks, whichever executor was asked for): each its own GPU, an equal share of
    every batch, micro-batches they agree on."""
    problems, res, workers = [], cfg.resources, cfg.resources.num_workers
    if workers == 1:
        return problems
    if res.gpus_per_worker and res.gpus_per_worker != int(res.gpus_per_worker):
        problems.append(Problem("resources.gpus_per_worker", f"{res.gpus_per_worker} GPU per worker with "
                                f"num_workers={workers}: two ranks of one trial could share a GPU, which NCCL "
                                "refuses; use whole GPUs per worker, or num_workers: 1 to pack trials"))
    batch = cfg.search.space.get("batch_size")
    if batch is None and cfg.train.batch_size % workers:
        problems.append(Problem("train.batch_size", f"global batch {cfg.train.batch_size} must divide evenly "
                                f"over resources.num_workers={workers}; use a multiple of {workers}"))
    elif batch is not None and not isinstance(batch, FloatParam):
        values = batch_param_values(batch)
        bad = "a log-scaled range" if values is None else [v for v in values if v % workers]
        if bad:
            problems.append(Problem("search.space.batch_size", f"every sampled batch must divide over "
                                    f"resources.num_workers={workers} ({bad} does not); use choices that are "
                                    f"multiples of {workers}, or step: {workers}"))
    if cfg.train.micro_batch_size == "auto":
        problems.append(Problem("train.micro_batch_size", f"auto halves a worker's micro-batch when it runs out of "
                                f"memory, which one DDP rank of num_workers={workers} cannot do alone; give a "
                                "number, or use num_workers: 1"))
    return problems


def batch_problems(cfg: ExperimentConfig) -> list[Problem]:
    problems = []
    if isinstance(cfg.search.space.get("batch_size"), FloatParam):
        problems.append(Problem("search.space.batch_size", "must be an int or categorical param"))
    if cfg.train.micro_batch_size is not None and (cfg.train.fgm_epsilon or "fgm_epsilon" in cfg.search.space):
        problems.append(Problem("train.micro_batch_size", "FGM's adversarial pass needs the whole batch's gradient "
                                "at once; remove micro_batch_size or fgm_epsilon"))
    return problems


def quantization_problems(cfg: ExperimentConfig) -> list[Problem]:
    if cfg.train.peft.quantization is None:
        return []
    import importlib.util

    problems = []
    if not cfg.resources.gpus_per_worker:
        problems.append(Problem("train.peft.quantization", "bitsandbytes' 4-/8-bit weights run on CUDA GPUs; set "
                                "resources.gpus_per_worker, or remove the quantization"))
    if importlib.util.find_spec("bitsandbytes") is None:
        problems.append(Problem("train.peft.quantization", "needs bitsandbytes, which is not installed: "
                                "pip install 'raytune-llm[quant]'"))
    return problems


def data_problems(cfg: ExperimentConfig) -> list[Problem]:
    if cfg.data.eval_split == cfg.data.train_split:
        return [Problem("data.eval_split", "must differ from data.train_split")]
    return []


def search_problems(cfg: ExperimentConfig) -> list[Problem]:
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
    return problems


def rule_problems(cfg: ExperimentConfig) -> list[Problem]:
    """Every cross-field problem of a schema-valid experiment that no plug-in owns."""
    return (worker_problems(cfg) + batch_problems(cfg) + lever_problems(cfg) + quantization_problems(cfg)
            + sharding_problems(cfg) + data_problems(cfg) + search_problems(cfg))
