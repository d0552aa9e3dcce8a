"""Synthetic fine-tuning curves for the search benchmark: a continuous landscape over (PEFT method, learning rate)
with the failure modes real searches meet, in the same shape as the recordings (benchmarks/recordings), so that
the real stability guard can be replayed on every step.

A binary task with balanced labels (chance: accuracy 0.5, MCC 0, loss ln 2). Per method, the final accuracy peaks
at the method's best learning rate (full fine-tuning 1e-4, LoRA 3e-3: ~10x apart, as recorded on MiniLM) and falls
off in log lr. Lower rates learn slowly (slow starters: flat at chance for a while, then rising); far too low ones
never leave chance; rates more than ~1.2 decades above the best diverge (the loss blows up to inf) or spike
without recovering (the loss jumps and the model collapses to the majority class). Each config's curve is fixed
by a hash of the config (the same config gives the same run), with a little noise.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any

STEPS, EVAL_EVERY, EVAL_ROWS = 100, 10, 400
BEST_LOG_LR = {"full": -4.0, "lora": -2.5}
CHANCE_LOSS = math.log(2)
META = {"task": "synthetic", "objective": "eval_accuracy", "chance_metric": "eval_mcc", "chance_value": 0.0,
        "chance_loss": CHANCE_LOSS, "majority_rate": 0.5, "sizes": {"train": 1600, "eval": EVAL_ROWS}}


def _rng(config: dict[str, Any]) -> random.Random:
    key = f"{config['peft.method']}:{config['optimizer.lr']:.6g}"
    return random.Random(int(hashlib.sha1(key.encode()).hexdigest()[:12], 16))


def run_for(config: dict[str, Any]) -> dict[str, Any]:
    """The curve of one config: evaluations every EVAL_EVERY steps, every step's loss and gradient norm."""
    rng = _rng(config)
    offset = math.log10(config["optimizer.lr"]) - BEST_LOG_LR[config["peft.method"]]
    peak = 0.42 * math.exp(-((offset / 0.9) ** 2)) + rng.gauss(0, 0.01)
    tau = 0.12 * 10 ** max(0.0, -offset * 0.6)  # slower the further below the best rate
    delay = min(0.6, 0.1 * max(0.0, -offset) ** 1.5)  # slow starters sit at chance first
    blow_up = None
    if offset > 1.2:  # too high: diverges (non-finite) or spikes and collapses, at a random point
        blow_up = (rng.uniform(0.05, 0.4), "inf" if rng.random() < 0.5 else "spike")
    losses, grads, evals = [], [], []
    acc = 0.5
    for step in range(1, STEPS + 1):
        t = step / STEPS
        progress = 0.0 if t < delay else 1 - math.exp(-(t - delay) / tau)
        acc = 0.5 + max(0.0, peak) * progress
        loss = CHANCE_LOSS - 1.1 * (acc - 0.5) + rng.gauss(0, 0.03)
        grad = 1.0 + rng.gauss(0, 0.15)
        if blow_up and t >= blow_up[0]:
            since = (t - blow_up[0]) * STEPS
            acc = 0.5
            if blow_up[1] == "inf":
                loss, grad = (CHANCE_LOSS * 10 ** since, 10 ** (1 + since)) if since < 6 else (math.inf, math.inf)
            else:
                loss, grad = 3 * CHANCE_LOSS + rng.gauss(0, 0.05), 5.0 + rng.gauss(0, 0.5)
        losses.append(loss)
        grads.append(grad)
        if step % EVAL_EVERY == 0:
            noisy = min(1.0, max(0.0, acc + rng.gauss(0, 0.008)))
            evals.append({"step": step, "eval_accuracy": noisy, "eval_mcc": 2 * (noisy - 0.5),
                          "eval_loss": CHANCE_LOSS - 1.1 * (noisy - 0.5)
                          if not (blow_up and t >= blow_up[0]) else 3 * CHANCE_LOSS})
    failed = bool(blow_up) or evals[-1]["eval_accuracy"] <= 0.52
    return {"config": {**config, "schedule.warmup_ratio": 0.0}, "evals": evals, "step_loss": losses,
            "step_grad_norm": grads, "total_steps": STEPS, "end": "failed" if failed else "healthy"}


def reference_runs(n: int = 400) -> list[dict[str, Any]]:
    """Runs spread over the benchmark's space, to rank a run against (its task's top 10%)."""
    rng = random.Random(0)
    return [run_for({"peft.method": rng.choice(["full", "lora"]), "optimizer.lr": 10 ** rng.uniform(-5, -1)})
            for _ in range(n)]
