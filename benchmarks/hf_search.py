"""The `Trainer.hyperparameter_search(backend="optuna")` arm of benchmarks/overhead.py.

Two ways to run it on the data a search prepared (same model, tokenizer, rows, steps, evaluations):
  * its own search: Optuna's TPE proposes, Optuna's successive-halving pruner (ASHA's rungs) stops;
  * a replay of a work plan (each trial's learning rate and the step it stopped at, in the order our search made
    them): the same trials, each stopped after the same evaluation, so both do the same work and the wall times
    compare the executors alone. Pruners differ (Ray's ASHA interpolates a percentile of a rung's values, Optuna's
    takes the k-th best), so their own searches do different amounts of work.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def work_plan(run_dir: Path) -> list[tuple[float, int]]:
    """(learning rate, optimizer steps done) of every trial of a finished search, in the order Tune created them."""
    trials = []
    for trial in run_dir.glob("trial_*"):
        rows = (trial / "result.json").read_text().splitlines()
        if rows:
            last = json.loads(rows[-1])  # Tune's trial ids end in a creation counter: "4c6a2_00007"
            lr = json.loads((trial / "params.json").read_text())["optimizer.lr"]
            trials.append((last["trial_id"], float(lr), int(last["step"])))
    return [(lr, step) for _, lr, step in sorted(trials)]


def hf_search(info: Any, trials: int, steps: int, eval_every: int, out_dir: Path,
              plan: list[tuple[float, int]] | None = None) -> tuple[float, int]:
    """Wall time and optimizer steps of Trainer.hyperparameter_search (optuna), its own search or `plan`'s."""
    import datasets
    import numpy as np
    import optuna
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    class StepCounter(TrainerCallback):  # optimizer steps over all trials: the work done
        steps = 0

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            StepCounter.steps += 1

    class ReplayPruner(optuna.pruners.BasePruner):
        """Stops trial n after the evaluation at which the recorded search stopped its n-th trial."""

        def prune(self, study: Any, trial: Any) -> bool:
            stop = plan[trial.number][1]
            return stop < steps and trial.last_step is not None and trial.last_step >= stop

    data = datasets.load_from_disk(info.data_path)
    tokenizer = AutoTokenizer.from_pretrained(info.tokenizer_path)
    labels = info.label_names

    def model_init(trial: Any = None) -> Any:
        return AutoModelForSequenceClassification.from_pretrained(info.model_path, num_labels=len(labels))

    def accuracy(pred: Any) -> dict[str, float]:
        return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}

    def space(trial: Any) -> dict[str, float]:
        if plan is not None:
            return {"learning_rate": plan[trial.number][0]}
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)}

    training = TrainingArguments(
        output_dir=str(out_dir), max_steps=steps, eval_strategy="steps", eval_steps=eval_every,
        per_device_train_batch_size=16, per_device_eval_batch_size=32, learning_rate=1e-4, save_strategy="no",
        report_to=[], logging_strategy="no", disable_tqdm=True, use_cpu=True, seed=0,
    )
    trainer = Trainer(model_init=model_init, args=training, train_dataset=data["train"], eval_dataset=data["eval"],
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy,
                      callbacks=[StepCounter()])
    # ASHA's rungs: HF reports at optimizer steps, ours at evaluation rounds of `eval_every` steps
    pruner = (ReplayPruner() if plan is not None
              else optuna.pruners.SuccessiveHalvingPruner(min_resource=eval_every, reduction_factor=3))
    t = time.time()
    trainer.hyperparameter_search(
        hp_space=space, backend="optuna", n_trials=len(plan) if plan is not None else trials,
        direction="maximize", compute_objective=lambda metrics: metrics["eval_accuracy"],
        sampler=optuna.samplers.TPESampler(seed=0), pruner=pruner,
    )
    return time.time() - t, StepCounter.steps
