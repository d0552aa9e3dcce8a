"""How big a search `raytune-llm init` drafts: the budget (a number of trials, or a time divided by one trial's
time, measured here on real batches), this machine's resources (GPUs, CPUs, memory; trials packed several to a GPU
when the memory estimate of raytune_llm.training.memory says they fit), ASHA sized to the number of trials, and
how often a trial evaluates."""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raytune_llm.core.errors import UserError
from raytune_llm.schema import SearchConfig, TrainConfig
from raytune_llm.training.spec import run_steps

if TYPE_CHECKING:
    import datasets
    import torch

GIB = 1024**3
# the portfolio start's recipes (search.portfolio_size's default) and one trial of the searcher's
MIN_TRIALS = SearchConfig.model_fields["portfolio_size"].default + 1
MAX_TRIALS = 100  # beyond this a space of ~6 params gains little: longer trials are the better use of the time
START_S = 3.0  # an in-process trial's start-up (README, "Start-up cost per trial")
PACK = (4, 2, 1)  # trials per GPU tried, most first
MEMORY_HEADROOM = 0.8  # of a GPU's or the RAM's bytes that trials may plan on: the rest for the allocator, the OS
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


@dataclass(frozen=True)
class Budget:
    text: str
    trials: int | None = None
    seconds: float | None = None


def parse_budget(text: str) -> Budget:
    """`20-trials` (or `20 trials`), or a time: `2h`, `90m`, `1h30m`, `45min`, `600s`."""
    s = text.strip().lower()
    if found := re.fullmatch(r"(\d+)[-_ ]?trials?", s):
        if int(found.group(1)) < 1:
            raise UserError(f"--budget {text}: at least 1 trial")
        return Budget(text, trials=int(found.group(1)))
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", s)
    if parts and re.fullmatch(r"(?:\d+(?:\.\d+)?\s*[a-z]+\s*)+", s) and all(u in _UNITS for _, u in parts):
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
        if seconds > 0:
            return Budget(text, seconds=seconds)
    raise UserError(f"--budget {text}: expected a time (2h, 90m, 1h30m) or a number of trials (20-trials)")


@dataclass(frozen=True)
class Machine:
    cpus: int
    ram: int
    gpus: int
    gpu_memory: int = 0
    gpu_name: str = ""
    bf16: bool = False

    def describe(self) -> str:
        gpus = f"{self.gpus} x {self.gpu_name} ({self.gpu_memory / GIB:.0f} GiB)" if self.gpus else "no GPU"
        return f"{self.cpus} CPUs, {self.ram / GIB:.0f} GiB RAM, {gpus}"


def this_machine() -> Machine:
    import torch

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpus = os.cpu_count() or 1
    if not torch.cuda.is_available():
        return Machine(cpus, ram, 0)
    props = torch.cuda.get_device_properties(0)
    return Machine(cpus, ram, torch.cuda.device_count(), props.total_memory, props.name, torch.cuda.is_bf16_supported())


def memory_estimates(model_path: str, label_names: list[str], trains: list[TrainConfig], task: str, seq_len: int,
                     half: bool, **hub: Any) -> dict[str, int]:
    """Peak bytes of a training step per PEFT method (models built on the meta device: no weights, no compute)."""
    from raytune_llm.models.build import preflight
    from raytune_llm.training import memory

    models = preflight(model_path, label_names, trains, model_path, task, **hub)
    return {t.peft.method.value: memory.estimate(m, t, t.batch_size, seq_len, half).total
            for t, m in zip(trains, models, strict=True)}


@dataclass(frozen=True)
class Placement:
    resources: dict[str, Any]
    concurrent: int
    why: str
    max_concurrent: int | None = None  # set when memory, not the CPUs, limits how many trials run at once


def place(machine: Machine, need: int) -> Placement:
    """One worker per trial (it trains in its Tune trial's process: no start-up cost); on GPUs as many trials per GPU
    as the memory estimate allows, on CPU one core each."""
    est = f"a trial needs ~{need / GIB:.1f} GiB (training.memory's estimate)"
    if machine.gpus:
        room = machine.gpu_memory * MEMORY_HEADROOM
        per_gpu = next((n for n in PACK if n * need <= room), 1)
        concurrent = min(machine.gpus * per_gpu, machine.cpus)
        cpus = max(1, min(4, machine.cpus // concurrent))
        why = (f"{est}: {per_gpu} fit in {MEMORY_HEADROOM:.0%} of a {machine.gpu_memory / GIB:.0f} GiB GPU"
               if per_gpu > 1 else f"{est}: one trial per {machine.gpu_memory / GIB:.0f} GiB GPU")
        res = {"num_workers": 1, "gpus_per_worker": round(1 / per_gpu, 4), "cpus_per_worker": cpus}
        if need > room:
            why += "; more than the GPU has: micro_batch_size auto halves the micro-batch on out-of-memory"
        return Placement(res, concurrent, why)
    fits = max(1, int(machine.ram * MEMORY_HEADROOM // max(need, 1)))
    concurrent = min(machine.cpus, fits)
    why = f"no GPU: a core per trial, {concurrent} at once on {machine.cpus} cores; {est}"
    res = {"num_workers": 1, "cpus_per_worker": 1}
    return Placement(res, concurrent, why, concurrent if concurrent < machine.cpus else None)


@dataclass(frozen=True)
class Timing:
    step_s: float  # one optimizer step of train.batch_size rows
    eval_batch_s: float  # one no-grad forward of eval_batch_size rows
    steps: int  # steps timed (after one warm-up step)
    device: str
    token_s: float = 0.0  # one generated token for the rows a causal LM answers at each evaluation


def measure(model_path: str, label_names: list[str], train: TrainConfig, task_name: str, tokenizer: Any,
            encoded: datasets.Dataset, eval_batch_size: int, answered: int = 0, steps: int = 3,
            threads: int | None = 1, **hub: Any) -> Timing:
    """Time `steps` optimizer steps (after one warm-up step) of the product's model (models.build: the PEFT method,
    fp32 trainable weights) on real tokenised rows, with the task's loss, AdamW and clipping as the training loop
    runs them, and one evaluation batch; on the GPU if there is one, else on `threads` CPU threads (a trial's)."""
    import torch
    from transformers.utils import logging as hf_logging

    from raytune_llm.models.build import build_model
    from raytune_llm.tasks import MODEL_COLUMNS, get_task
    from raytune_llm.training.precision import autocast_for

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    task = get_task(task_name)
    autocast = autocast_for(train.precision, device)
    before = torch.get_num_threads()
    hf_logging.disable_progress_bar()  # the weights' loading bar: this is one line of init's output
    if device.type == "cpu" and threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(train.seed)
        model = build_model(model_path, label_names, train, model_path, task_name, tokenizer.pad_token_id,
                            frozen_dtype=autocast["dtype"] if autocast["enabled"] else None, **hub).to(device)
        model.train()
        collate = task.collator(tokenizer)
        rows = encoded.select_columns([c for c in MODEL_COLUMNS if c in encoded.column_names])

        def batch(start: int, n: int) -> dict[str, torch.Tensor]:
            picked = [rows[(start + i) % len(rows)] for i in range(n)]
            return {k: v.to(device) for k, v in collate(picked).items()}

        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=train.optimizer.lr)
        clip = train.grad_clip or float("inf")
        batches = [batch(i * train.batch_size, train.batch_size) for i in range(steps + 1)]
        elapsed = 0.0
        for i, b in enumerate(batches):
            started = time.perf_counter()
            with torch.autocast(**autocast):
                logits = model(**{k: v for k, v in b.items() if k != "labels"}).logits
            task.loss(logits, b["labels"], 0.0).backward()
            torch.nn.utils.clip_grad_norm_(trainable, clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _sync(device)
            elapsed += (time.perf_counter() - started) if i else 0.0  # the first step warms up allocators, kernels
        model.eval()
        b = batch(0, eval_batch_size)
        with torch.no_grad(), torch.autocast(**autocast):
            started = time.perf_counter()
            model(**{k: v for k, v in b.items() if k != "labels"})
            _sync(device)
            eval_s = time.perf_counter() - started
            token_s = _token_time(model, encoded, answered, device) if answered else 0.0
        return Timing(elapsed / steps, eval_s, steps, device.type, token_s)
    finally:
        torch.set_num_threads(before)


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _token_time(model: Any, encoded: datasets.Dataset, answered: int, device: torch.device) -> float:
    """One generation step (KV-cached) for `answered` prompts at once, from 4 greedy tokens after the prompt."""
    import torch

    prompts = [r["input_ids"][: r["prompt_length"]] for r in encoded.select(range(min(answered, len(encoded))))]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    started = time.perf_counter()
    model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                   pad_token_id=0)
    _sync(device)
    return (time.perf_counter() - started) / 4


@dataclass(frozen=True)
class Asha:
    grace_period: int
    reduction_factor: int
    evaluations: int  # per trial: the rungs are grace_period x reduction_factor^k below it

    @property
    def cost_share(self) -> float:
        """The average share of a full trial's evaluations a trial runs, when each rung keeps 1/reduction_factor."""
        rungs = [self.grace_period * self.reduction_factor**k for k in range(8)]
        rungs = [r for r in rungs if r < self.evaluations] + [self.evaluations]
        done, share, kept = 0, 0.0, 1.0
        for r in rungs:
            share += kept * (r - done)
            done, kept = r, kept / self.reduction_factor
        return share / self.evaluations


def asha_for(trials: int) -> Asha:
    """Halving (rungs at 1, 2, 4 of 4 evaluations) for a few trials; with more, a third kept at rungs 1 and 3 of 6,
    so that the many weak trials stop sooner."""
    return Asha(1, 2, 4) if trials <= 12 else Asha(1, 3, 6)


@dataclass(frozen=True)
class Sized:
    trials: int
    asha: Asha
    why: str
    max_train_samples: int | None = None
    trial_s: float | None = None


def trial_seconds(timing: Timing, steps: int, evaluations: int, eval_rows: int, eval_batch_size: int,
                  answered_tokens: int = 0) -> float:
    per_eval = math.ceil(eval_rows / eval_batch_size) * timing.eval_batch_s + answered_tokens * timing.token_s
    return START_S + steps * timing.step_s + evaluations * per_eval


def size_by_time(budget: Budget, timing: Timing, concurrent: int, train_rows: int, train: TrainConfig,
                 eval_rows: int, eval_batch_size: int, answered_tokens: int = 0) -> Sized:
    """As many trials as fit `concurrent` at once into the budget, the default recipe's run to its end and the
    others' at ASHA's average share; fewer than MIN_TRIALS fit: train rows are capped until they do."""
    assert budget.seconds is not None
    steps = trial_steps(train_rows, train)
    capacity = budget.seconds * concurrent

    def fit(asha: Asha, n_steps: int) -> tuple[int, float]:
        one = trial_seconds(timing, n_steps, asha.evaluations, eval_rows, eval_batch_size, answered_tokens)
        return 1 + int((capacity - one) // (one * asha.cost_share)), one

    asha = asha_for(1)
    trials, one = fit(asha, steps)
    if trials > 12:
        asha = asha_for(trials)
        trials, one = fit(asha, steps)
    measured = (f"one trial ~ {one:.0f} s: {timing.step_s:.3g} s/step measured over {timing.steps} steps "
                f"({timing.device}) x {steps} steps, + {asha.evaluations} evaluations x {eval_rows} rows")
    if trials >= MIN_TRIALS:
        capped = min(trials, MAX_TRIALS)
        why = (f"--budget {budget.text}: {measured}; {concurrent} at once, ASHA stopping the rest at "
               f"~{asha.cost_share:.0%} of a trial on average: {trials} fit" + (f", capped at {MAX_TRIALS}"
                                                                                if capped < trials else ""))
        return Sized(capped, asha, why, trial_s=one)
    # Too few trials to search: shorten each until MIN_TRIALS fit (the time of a step does not depend on the rows).
    fixed = trial_seconds(timing, 0, asha.evaluations, eval_rows, eval_batch_size, answered_tokens)
    allowed = (capacity / (1 + (MIN_TRIALS - 1) * asha.cost_share) - fixed) / timing.step_s
    if allowed < 8:
        need = (fixed + 8 * timing.step_s) * (1 + (MIN_TRIALS - 1) * asha.cost_share) / concurrent
        raise UserError(f"--budget {budget.text}: too short for {MIN_TRIALS} trials here ({measured}); give at "
                        f"least {math.ceil(need / 60)}m")
    rows = int(allowed) * train.batch_size
    why = (f"--budget {budget.text}: {measured}; only {max(trials, 0)} would fit, so each trial trains on "
           f"{rows} rows (data.max_train_samples) and {MIN_TRIALS} fit, {concurrent} at once")
    return Sized(MIN_TRIALS, asha, why, max_train_samples=rows,
                 trial_s=trial_seconds(timing, int(allowed), asha.evaluations, eval_rows, eval_batch_size,
                                       answered_tokens))


def trial_steps(train_rows: int, train: TrainConfig) -> int:
    """A trial's optimizer steps, as the training loop counts them (training.spec.run_steps)."""
    return run_steps(train, train_rows)


def eval_every(train_rows: int, train: TrainConfig, evaluations: int) -> tuple[int, int]:
    """Steps between evaluations for `evaluations` per trial (ASHA's rungs), and a trial's steps."""
    steps = trial_steps(train_rows, train)
    return max(1, math.ceil(steps / evaluations)), steps
