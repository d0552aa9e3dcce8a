"""`raytune-llm init`: a commented experiment YAML drafted from a model and a dataset. The data's columns tell the
task (raytune_llm.runs.draft_data), the model's tokenizer the input length, the recipe library the search space and
the recipe trials start from, this machine and the budget the search's size (raytune_llm.runs.sizing). Each guess
is written with a comment saying how it was made."""

from __future__ import annotations

import datetime
import math
import re
import sys
from dataclasses import dataclass
from typing import Any

from raytune_llm.core.errors import UserError
from raytune_llm.recipes import FAMILIES, Family, family_of, library
from raytune_llm.runs import sizing
from raytune_llm.runs.commented_yaml import Block
from raytune_llm.runs.draft_data import DataDraft, Setting, read_data
from raytune_llm.schema import DEFAULT_OBJECTIVE, DataConfig, Task, TrainConfig
from raytune_llm.schema.space import apply_params, set_path
from raytune_llm.sources import builtins
from raytune_llm.sources.data import quiet_progress

PERCENTILE = 0.95
BATCH_SIZE, EVAL_BATCH_SIZE = 16, 64
# Why each family searches these methods, the first one's default recipe being trial 1 (the yardstick).
METHODS: dict[Family, tuple[list[str], str]] = {
    "encoder": (["full", "lora"], "an encoder is small enough to fine-tune in full, the usual best; LoRA trains "
                "~1% of the weights at ~10x the learning rate, and often matches it"),
    "decoder": (["lora", "prompt_tuning"], "a causal LM is large: LoRA (the usual choice for LLMs) and prompt "
                "tuning (a few thousand weights) train a sliver of it; full fine-tuning needs ~4x the memory"),
}
ALPACA = "### Instruction:\n{%s}\n\n%s### Response:\n"
METHOD_NAMES = {"full": "full fine-tuning", "lora": "LoRA", "prompt_tuning": "prompt tuning",
                "prefix_tuning": "prefix tuning"}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- the model
@dataclass
class ModelFacts:
    path: str  # what from_pretrained reads (a GGUF file's folder)
    hub: dict[str, Any]  # from_pretrained's extra arguments (gguf_file)
    model_type: str | None
    architectures: tuple[str, ...]
    max_positions: int | None
    tokenizer: Any


def read_model(name: str) -> ModelFacts:
    from transformers import AutoConfig, AutoTokenizer

    from raytune_llm.sources.gguf import gguf_source
    from raytune_llm.sources.locate import locate_model

    path, hub = locate_model(name), {}
    if source := gguf_source(path, None):
        path, hub = source[0], {"gguf_file": source[1]}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **hub)
        config = AutoConfig.from_pretrained(path, **hub)
    except (OSError, ValueError) as exc:
        raise UserError(f"--model {name}: cannot load its tokenizer and config: {str(exc).splitlines()[0]}; pass "
                        "a model folder, a .gguf file, a hub id (online) or builtin:minilm") from None
    if tokenizer.pad_token is None:  # decoders ship without one; batches of several rows need it
        tokenizer.pad_token = tokenizer.eos_token
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit and limit < 1_000_000:  # transformers' "no limit" is a huge number
        positions = min(positions or limit, limit)
    return ModelFacts(path, hub, getattr(config, "model_type", None), tuple(getattr(config, "architectures", None)
                      or ()), positions, tokenizer)


def _short(name: str) -> str:
    last = name.removeprefix(builtins.PREFIX).rstrip("/").split("/")[-1]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", last.removesuffix(".gguf")).strip("-.").lower() or "run"


# ----------------------------------------------------------------------------------------------- lengths
def _percentile(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(PERCENTILE * len(ordered)) - 1)]


def _up8(n: int) -> int:
    return max(8, 8 * math.ceil(n / 8))


def token_lengths(draft: DataDraft, tokenizer: Any) -> tuple[list[int], list[int]]:
    """Token lengths of the sampled rows as the task tokenises them, and of a causal LM's responses alone."""
    from raytune_llm.tasks.causal_lm import prompt_text

    cfg, rows, task = draft.config, draft.sample, draft.task.value
    if task == "token_classification":
        enc = tokenizer(list(rows[cfg.text_column]), is_split_into_words=True)
        return [len(ids) for ids in enc["input_ids"]], []
    if task in ("causal_lm", "generative_classification"):
        prompts = [len(tokenizer(prompt_text(r, cfg, tokenizer), add_special_tokens=not cfg.chat_template)
                       ["input_ids"]) for r in rows]
        targets = [str(v) for v in rows[cfg.label_column]] if task == "causal_lm" else list(draft.label_names or [])
        answers = [len(tokenizer(t + (tokenizer.eos_token or ""), add_special_tokens=False)["input_ids"])
                   for t in targets]
        if task == "generative_classification":  # every row ends in one label's word: count the longest
            return [p + max(answers) for p in prompts], []
        return [p + a for p, a in zip(prompts, answers)], answers
    pairs = list(rows[cfg.text_pair_column]) if cfg.text_pair_column else None
    return [len(ids) for ids in tokenizer(list(rows[cfg.text_column]), pairs)["input_ids"]], []


# ----------------------------------------------------------------------------------------------- the draft
def _space(methods: list[str], family: Family, why_methods: str) -> Block:
    lib = library()
    space = Block()
    space.set("peft.method", {"type": "categorical", "choices": methods}, why_methods)
    ranges = {m: lib.method_ranges(m, family) for m in methods}
    base = ranges[methods[0]]["optimizer.lr"]
    lr: dict[str, Any] = {"type": "float", "low": base.low, "high": base.high, "log": base.log}
    by = {m: {"low": r["optimizer.lr"].low, "high": r["optimizer.lr"].high}
          for m, r in ranges.items() if m != methods[0] and "optimizer.lr" in r}
    if by:
        lr["by"] = {"peft.method": by}
    space.set("optimizer.lr", lr, f"the library's {family} ranges per method (recipes/library.yaml): each method "
              "its own, so neither wastes trials in the other's")
    for m in methods:
        for name, r in ranges[m].items():
            if name != "optimizer.lr":
                cast = int if r.type == "int" else float
                param = {"type": r.type, "low": cast(r.low), "high": cast(r.high), **({"log": True} if r.log else {})}
                space.set(name, {**param, "when": {"peft.method": m}}, f"{METHOD_NAMES[m]} only")
    for name, r in lib.common_ranges().items():
        space.set(name, {"type": "float", "low": r.low, "high": r.high, **({"log": True} if r.log else {})},
                  "the library's common range")
    first = lib.default(methods[0], family).params.get("schedule.name", "linear")
    names = {lib.default(m, f).params.get("schedule.name", "linear") for f in FAMILIES for m in lib.defaults[f]}
    space.set("schedule.name", {"type": "categorical", "choices": [first, *sorted(names - {first})]},
              "the schedules of the library's default recipes")
    return space


def _nested(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in params.items():
        set_path(out, path, value)
    return out


def draft(model: str, data: str, task: str | None = None, budget: str = "8-trials", subset: str | None = None,
          label_column: str | None = None, text_column: str | None = None, labels: list[str] | None = None,
          command: str = "", file: str = "FILE") -> str:
    """The experiment YAML, every guessed value commented with how it was made."""
    from raytune_llm.tasks import get_task

    plan = sizing.parse_budget(budget)
    say(f"reading {data} ...")
    d = read_data(data, subset, task, label_column, text_column, labels)
    say(f"reading {model} ...")
    m = read_model(model)
    name = d.task.value
    family = family_of(name, m.model_type, m.architectures)
    tok = m.tokenizer
    if name in ("causal_lm", "generative_classification"):
        _prompt(d, tok)

    lengths, answers = token_lengths(d, tok)
    p95 = _percentile(lengths)
    max_length = _up8(p95)
    length_why = f"95th percentile of {len(lengths)} rows' token lengths: {p95}"
    if m.max_positions and max_length > m.max_positions:
        max_length, length_why = m.max_positions, f"{length_why}, capped at the model's {m.max_positions} positions"
    else:
        length_why += ", up to a multiple of 8"

    methods, why_methods = METHODS[family]
    recipe = library().default(methods[0], family)
    train_values: dict[str, Any] = {"epochs": 1, "batch_size": BATCH_SIZE, "eval_batch_size": EVAL_BATCH_SIZE,
                                    "seed": 42, **_nested(recipe.params)}
    train = TrainConfig.model_validate(train_values)
    machine = sizing.this_machine()
    say(f"this machine: {machine.describe()}")
    cfg_data = d.config
    label_names = get_task(name).label_names(cfg_data, d.sample) if name != "causal_lm" else []
    variants = [apply_params(train, {"peft.method": x}) for x in methods]
    half = bool(machine.gpus and machine.bf16)
    try:
        need = max(sizing.memory_estimates(m.path, label_names, variants, name, max_length, half, **m.hub).values())
    except UserError:
        raise
    except Exception:  # an architecture the meta-device estimate cannot run: place by the CPUs alone
        need = 0
    placed = sizing.place(machine, need)
    answered = (32 if machine.gpus else 8) if name == "causal_lm" else 0
    max_new = min(512, _up8(_percentile(answers))) if answers else 0

    sized = _size(plan, d, m, name, train, label_names, variants[0], placed, max_length, answered, max_new)
    if sized.max_train_samples:
        d.data["max_train_samples"] = Setting(sized.max_train_samples, "the budget's cap (see search.num_trials)")
    rows = min(d.train_rows, sized.max_train_samples or d.train_rows)
    every, steps = sizing.eval_every(rows, train, sized.asha.evaluations)

    root = Block()
    for line in _header(command, machine, file):
        root.note(line)
    root.set("task", name, d.task.why)
    mb = root.block("model")
    mb.set("name", model)
    mb.set("max_length", max_length, length_why)
    db = root.block("data")
    for key in DataConfig.model_fields:
        if key in d.data:
            db.set(key, d.data[key].value, d.data[key].why)
    if name == "causal_lm":
        gb = root.block("generation")
        gb.set("eval_samples", answered, "eval rows answered by generation at each evaluation (greedy: slow on CPU)"
               if not machine.gpus else "eval rows answered by generation at each evaluation")
        gb.set("max_new_tokens", max_new, f"95th percentile of the responses' token lengths: {_percentile(answers)}, "
               "up to a multiple of 8 (at most 512)")
        for key, s in d.generation.items():
            gb.set(key, s.value, s.why)
    tb = root.block("train")
    tb.set("epochs", 1, "one pass: the library's recipes were recorded at a search's 1-2 epochs")
    tb.set("batch_size", BATCH_SIZE, "the recordings' batch")
    tb.set("eval_batch_size", EVAL_BATCH_SIZE)
    tb.set("eval_every", every, f"{steps} steps a trial (1 epoch x {rows} rows / {BATCH_SIZE}): "
           f"{math.ceil(steps / every)} evaluations, ASHA's rounds")
    tb.set("seed", 42)
    tb.note(f"the library's default recipe of {METHOD_NAMES[methods[0]]} ({family}s), what trial 1 runs; params "
            f"the space does not search keep these values. From: {recipe.source}")
    for key, value in _nested(recipe.params).items():
        tb.set(key, value)
    sb = root.block("search")
    objective = d.metric or Setting(DEFAULT_OBJECTIVE[Task(name)][0], "the task's default objective")
    sb.set("metric", objective.value, objective.why)
    sb.set("num_trials", sized.trials, sized.why)
    if plan.seconds:
        sb.set("time_budget_s", int(plan.seconds), f"--budget {plan.text}: the search stops here, trials or not")
    if placed.max_concurrent:
        sb.set("max_concurrent_trials", placed.max_concurrent, "as many as the RAM holds (resources below)")
    sb.set("space", _space(methods, family, why_methods))
    sb.set("searcher", {"name": "tpe", "seed": 0}, "seeded: a rerun proposes the same trials")
    a = sized.asha
    sb.set("scheduler", {"name": "asha", "grace_period": a.grace_period, "reduction_factor": a.reduction_factor},
           f"{sized.trials} trials: each rung keeps 1/{a.reduction_factor} of the trials that reach it")
    sb.note(f"start: portfolio (the default, left unset): trial 1 runs the default recipe of "
            f"{METHOD_NAMES[methods[0]]} to its end (the yardstick every pick is shown against), then the library's "
            "learnt recipes, then TPE")
    rb = root.block("resources")
    for key, value in placed.resources.items():
        rb.set(key, value, placed.why if key == "num_workers" else "")
    root.block("run").set("name", f"{_short(model)}-{_short(data)}" + (f"-{_short(subset)}" if subset else ""),
                          "the model's and the data's names")
    return "\n".join(root.lines()) + "\n"


def _prompt(d: DataDraft, tokenizer: Any) -> None:
    """A causal LM's prompt: the tokenizer's chat template when it has one (an instruct model), else Alpaca's."""
    data = d.data
    if getattr(tokenizer, "chat_template", None):
        data["chat_template"] = Setting(True, "the tokenizer has a chat template: the prompt goes in as a user turn")
        return
    prompt = data["text_column"].value
    extra = "### Input:\n{input}\n\n" if "prompt_template" in data else ""
    data["prompt_template"] = Setting(ALPACA % (prompt, extra), "the tokenizer has no chat template: Alpaca's "
                                      "prompt format")


def _header(command: str, machine: sizing.Machine, file: str) -> list[str]:
    today = datetime.date.today().isoformat()
    return [f"Drafted by `{command or 'raytune-llm init'}` on {today}, on this machine ({machine.describe()}). "
            f"Each guessed value says how it was made: check them, then run `raytune-llm validate {file}` and "
            f"`raytune-llm search {file}`."]


def _size(plan: sizing.Budget, d: DataDraft, m: ModelFacts, name: str, train: TrainConfig, label_names: list[str],
          first: TrainConfig, placed: sizing.Placement, max_length: int, answered: int,
          max_new: int) -> sizing.Sized:
    if plan.trials is not None:
        why = f"--budget {plan.text}" + (" (the default; --budget 2h sizes it to a time)"
                                         if plan.text == "8-trials" else "")
        return sizing.Sized(plan.trials, sizing.asha_for(plan.trials), why)
    from raytune_llm.tasks import get_task

    cfg = d.config
    n = min(len(d.sample), max(train.batch_size * 4, EVAL_BATCH_SIZE))
    with quiet_progress():
        encoded = get_task(name).encode(d.sample.select(range(n)), cfg, m.tokenizer, max_length, label_names,
                                        "train")
    say(f"timing a few training steps of {first.peft.method.value} on real batches ...")
    timing = sizing.measure(m.path, label_names, first, name, m.tokenizer, encoded, EVAL_BATCH_SIZE,
                            min(answered, len(encoded)), **m.hub)
    return sizing.size_by_time(plan, timing, placed.concurrent, d.train_rows, train, d.eval_rows, EVAL_BATCH_SIZE,
                               max_new)

