"""A run folder as `search` leaves it (Tune's experiment state, each trial's result.json, raytune_llm.json), made
up without Ray or training: every outcome a report must show, at any size. Used by the report tests and
benchmarks/report_scale.py."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from raytune_llm.runs.layout import CONFIG_FILE, RunInfo, write_info
from raytune_llm.schema import ExperimentConfig, dump_config

# Outcome mix: (kind, share). Kinds: done, asha (stopped by the scheduler), plateau (stopped by the guard while
# healthy), at_chance (never left chance: run to its budget or stopped by the scheduler), a guard failure reason,
# error.
MIX = (("done", 0.25), ("asha", 0.35), ("at_chance", 0.05), ("plateau", 0.05), ("non_finite", 0.1),
       ("chance_level", 0.1), ("loss_spike", 0.05), ("error", 0.05))


def experiment(steps: int, eval_every: int) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "model": {"name": "synthetic/model"}, "data": {"source": "synthetic/data", "labels": ["neg", "pos"]},
        "train": {"max_steps": steps, "eval_every": eval_every},
        "search": {"metric": "eval_accuracy", "mode": "max", "num_trials": 8,
                   "space": {"optimizer.lr": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
                             "peft.method": {"type": "categorical", "choices": ["full", "lora"]},
                             "schedule.warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2}}},
        "run": {"name": "synthetic", "storage_path": "/tmp"},
    })


def _kind(rng: random.Random) -> str:
    r, acc = rng.random(), 0.0
    for kind, share in MIX:
        acc += share
        if r < acc:
            return kind
    return "done"


def write_run(run_dir: Path, trials: int, steps: int = 200, eval_every: int = 10, seed: int = 0) -> Path:
    rng = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = experiment(steps, eval_every)
    (run_dir / CONFIG_FILE).write_text(dump_config(cfg))
    write_info(run_dir, RunInfo(config=cfg.model_dump(mode="json"), model_path="m", tokenizer_path="m",
                                data_path="d", label_names=["neg", "pos"], sizes={"train": 1000}, chance_value=0.5))
    data, clock, rounds = [], 1_800_000_000, steps // eval_every
    for i in range(trials):
        trial_id = f"{i:08x}"
        params = {"optimizer.lr": 10 ** rng.uniform(-6, -2), "peft.method": rng.choice(["full", "lora"]),
                  "schedule.warmup_ratio": rng.uniform(0, 0.2)}
        kind = _kind(rng)
        ceiling = 0.6 + 0.35 * math.exp(-((math.log10(params["optimizer.lr"]) + 4) ** 2))
        stop_round = {"done": rounds, "asha": rng.choice([1, 2, 4]), "plateau": max(2, rounds // 2),
                      "error": 1, "at_chance": rng.choice([2, rounds])}.get(kind, rng.randint(1, max(1, rounds // 3)))
        stop_round = min(stop_round, rounds)
        logdir = f"trial_{trial_id}"
        (run_dir / logdir).mkdir()
        lines, total = [], 0.0
        clock += rng.randint(1, 30)
        for r in range(1, stop_round + 1 if kind != "error" else 1):
            step = r * eval_every
            last = r == stop_round
            accuracy = 0.5 + (ceiling - 0.5) * (1 - math.exp(-r / 3)) + rng.gauss(0, 0.01)
            if kind == "at_chance":
                accuracy = 0.5 + rng.uniform(-0.01, 0.01)
            losses = [0.7 * math.exp(-(step - eval_every + k) / steps) + rng.gauss(0, 0.02) for k in range(eval_every)]
            grads = [abs(rng.gauss(1.0, 0.2)) for _ in range(eval_every)]
            row = {"eval_accuracy": accuracy, "eval_loss": 1 - accuracy, "train_loss": losses[-1],
                   "grad_norm": grads[-1], "step": step, "total_steps": steps, "stop_reason": "",
                   "step_losses": losses, "step_grad_norms": grads, "trainable_params": 1000}
            if last and kind in ("non_finite", "chance_level", "loss_spike"):
                if kind == "non_finite":
                    row["step_losses"][-1], row["step_grad_norms"][-1] = math.nan, math.inf
                if kind == "loss_spike":
                    row["step_losses"][-3:] = [v * 8 for v in losses[-3:]]
                row.update({"stop_reason": kind, "stop_detail": f"synthetic {kind}",
                            "real_eval_accuracy": accuracy, "eval_accuracy": 0.0})
            if kind == "at_chance":
                row["at_chance"] = True
            if last and kind == "plateau":
                row.update({"stop_reason": "plateau", "stop_detail": "no progress"})
            spent = rng.uniform(5, 15) + (8 if r == 1 else 0)
            total += spent
            clock += int(spent)
            row.update({"time_this_iter_s": spent, "time_total_s": total, "training_iteration": r,
                        "timestamp": clock, "trial_id": trial_id, "config": params})
            lines.append(json.dumps(row))
        (run_dir / logdir / "result.json").write_text("".join(line + "\n" for line in lines))
        runtime: dict = {}
        if kind == "error":
            (run_dir / logdir / "error.txt").write_text("Traceback ...\nRuntimeError: synthetic failure\n")
            runtime["error_filename"] = "error.txt"
        status = "ERROR" if kind == "error" else "TERMINATED"
        meta = {"trial_id": trial_id, "evaluated_params": params, "status": status, "relative_logdir": logdir}
        data.append([json.dumps(meta), json.dumps(runtime)])
    (run_dir / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": data}))
    return run_dir
