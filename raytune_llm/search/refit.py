"""`export --refit`: the chosen config trained again on every labelled row (train + eval) before it is exported.

The search scored its trials on the eval split, so their checkpoints never learnt from those rows; once the config
is chosen they are just more training data (scikit-learn's `refit=True`). Each refit runs the same training loop
as the trials, under RUN/refit/: in this process for a single-worker config on a local run (as the in-process
executor's trials do: no Ray to start), else as a Ray Train run (executors/train.py, what `raytune-llm train`
runs); on a copy of the prepared data whose train split is train + eval (prepared/refit_data; eval and test as
they were, so that the loop still evaluates, checkpoints and lets the stability guard watch). Which refit export
takes: raytune_llm.results.refit.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raytune_llm.core import storage
from raytune_llm.core.errors import UserError
from raytune_llm.executors.env import HISTORY_FILE, history_row, last_report
from raytune_llm.results.export import Chosen, load_model, predict
from raytune_llm.results.refit import Refit, RefitRun, median_run
from raytune_llm.runs.layout import RunInfo
from raytune_llm.schema import ExperimentConfig, TrainConfig
from raytune_llm.training.bare import BareSession

REFIT_DIR = "refit"  # RUN/refit/<name>/: one refit's Train run (checkpoints, history.jsonl)
REFIT_DATA = "refit_data"  # beside the prepared data: train = train + eval; eval and test as they were


@dataclass(frozen=True)
class RefitPlan:
    steps: str  # full: the config's budget on the larger data; best: the pick's step count
    seeds: int


def plan_refit(cfg: ExperimentConfig, enabled: bool | None, steps: str | None, seeds: int | None) -> RefitPlan | None:
    """The refit export runs: the YAML's `refit:` section, each flag given on the command line overriding it; None
    when export does not refit."""
    if seeds is not None and seeds < 1:
        raise UserError(f"--refit-seeds {seeds}: at least 1")
    if not (enabled if enabled is not None else cfg.refit.applies(cfg.data.eval_holdout)):
        if steps is not None or seeds is not None:
            why = "--no-refit" if enabled is False else (
                "refit.enabled is false" if cfg.refit.enabled is False else "data.eval_holdout is not set")
            raise UserError(f"--refit-steps/--refit-seeds: this export does not refit ({why}); add --refit")
        return None
    return RefitPlan(steps or cfg.refit.steps, seeds or cfg.refit.seeds)


def refit_dataset(data: Any) -> Any:
    """The prepared DatasetDict with train = train + eval (the columns train has), eval and test unchanged."""
    import datasets

    train, held = data["train"], data["eval"].select_columns(data["train"].column_names)
    if held.features != train.features:  # e.g. an int label column stored as a ClassLabel in one split
        held = held.cast(train.features)
    return datasets.DatasetDict({**data, "train": datasets.concatenate_datasets([train, held])})


def write_refit_data(info: RunInfo) -> tuple[str, int]:
    """Where the refit data is (a local path or a URI beside the run's prepared data), made once per run; and its
    train rows."""
    import datasets

    data = datasets.load_from_disk(storage.node_copy(info.data_path, info.run_id))
    rows = len(data["train"]) + len(data["eval"])
    target = f"{info.data_path.rstrip('/').rpartition('/')[0]}/{REFIT_DATA}"
    done = storage.join(target, "dataset_dict.json")
    if storage.exists(done) if storage.is_uri(target) else Path(done).is_file():
        return target, rows
    # Saved beside its final place and moved there, so that a killed export never leaves half a dataset behind.
    staging = Path(tempfile.mkdtemp(prefix=".refit_data-", dir=None if storage.is_uri(target) else Path(target).parent))
    try:
        refit_dataset(data).save_to_disk(str(staging / REFIT_DATA))
        if storage.is_uri(target):
            storage.upload(staging / REFIT_DATA, target)
        else:
            with contextlib.suppress(OSError):  # another export made it meanwhile: the same rows
                (staging / REFIT_DATA).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, rows


def refit_train(train: TrainConfig, steps_rule: str, best_step: int, seed: int) -> TrainConfig:
    """The refit's training settings: the pick's, with `seed`, and with `best` exactly the pick's step count."""
    update: dict[str, Any] = {"seed": seed}
    if steps_rule == "best":
        if best_step < 1:
            raise UserError("--refit-steps best: the pick's report names no step count; use --refit-steps full")
        update["max_steps"] = best_step
    return TrainConfig.model_validate({**train.model_dump(mode="json"), **update})


def _train_one(cfg: ExperimentConfig, info: RunInfo, spec_dict: dict[str, Any], name: str) -> RefitRun:
    """One refit as a Ray Train run; what it ended with, never an exception (a failed refit falls back)."""
    from raytune_llm.executors.train import EvalHistory, build_trainer
    from raytune_llm.training.spec import RunSpec

    seed = spec_dict["train"]["seed"]
    root = storage.join(info.run_root, REFIT_DIR)
    history = storage.join(root, name, HISTORY_FILE)
    if not storage.is_uri(root):
        Path(root, name).mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(RunSpec(**spec_dict), cfg.resources, root, name, cfg.run, [EvalHistory(history)])
    try:
        result = trainer.fit()
    except Exception as exc:  # Train gave up on it (a crash, no resources): the search's checkpoint stays
        return RefitRun(seed, last_report(history), None, error=str(exc).strip().splitlines()[-1][:300])
    final = last_report(history) or dict(result.metrics or {})
    checkpoint = None
    if result.checkpoint is not None:
        local = Path(result.checkpoint.to_directory() if storage.is_uri(root) else result.checkpoint.path)
        saved = json.loads((local / "metrics.json").read_text())
        # The latest checkpoint is the model the run ended with only if it was made with the last report.
        checkpoint = local if saved.get("step") == final.get("step") else None
    return RefitRun(seed, final, checkpoint, stored=result.checkpoint.path if checkpoint else "")


class _LatestCheckpoint(BareSession):
    """The loop run in this process, keeping only the latest checkpoint (the one made with the last report) and
    every report in the refit's history, as a Train run's EvalHistory does."""

    def __init__(self, out: Path, history: Path, device: str,
                 on_report: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__(out, device)
        self.history = history
        self.on_report = on_report  # e.g. a compression search trial's forwarding to Tune's scheduler

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        with self.history.open("a") as log:
            log.write(json.dumps(history_row(metrics), default=str) + "\n")
        if self.on_report is not None:
            self.on_report(dict(metrics))
        if checkpoint_dir is None:
            self.reports.append(dict(metrics))
            return
        previous = list(self.checkpoints)
        super().report(metrics, checkpoint_dir)
        for old in previous:  # a refit exports its last model only
            shutil.rmtree(old, ignore_errors=True)
        self.checkpoints = self.checkpoints[-1:]


def _train_here(cfg: ExperimentConfig, spec_dict: dict[str, Any], folder: Path) -> RefitRun:
    """One single-worker refit in this process (the in-process executor's trials train so too): no Ray to start,
    no process to spawn. What it ended with, never an exception."""
    from raytune_llm.executors import worker
    from raytune_llm.results.export import check_device
    from raytune_llm.training.spec import RunSpec

    folder.mkdir(parents=True, exist_ok=True)
    session = _LatestCheckpoint(folder, folder / HISTORY_FILE, check_device(cfg.resources))
    seed = spec_dict["train"]["seed"]
    try:
        worker.run(RunSpec(**spec_dict), session)
    except Exception as exc:  # e.g. out of memory: the search's checkpoint stays
        return RefitRun(seed, session.reports[-1] if session.reports else {}, None,
                        error=str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__)
    final = session.reports[-1] if session.reports else {}
    last = session.checkpoints[-1] if session.checkpoints else None
    checkpoint = last if last is not None and json.loads((last / "metrics.json").read_text()).get(
        "step") == final.get("step") else None
    return RefitRun(seed, final, checkpoint, stored=str(checkpoint or ""))


def _score(runs: list[RefitRun], chosen: Chosen) -> tuple[str, str]:
    """Rank the healthy refits: by the test score when the test split is labelled, else by their final train
    loss. Returns (what they were ranked by, its mode)."""
    info, cfg = chosen.info, chosen.info.experiment
    metric = cfg.search.metric
    if "test" in info.sizes and "test" not in info.unlabelled_splits:
        for run in (r for r in runs if not r.failure):
            scores, _ = predict(load_model(info, chosen.train.peft.method, run.checkpoint), info, chosen.train, "test")
            run.score = scores.get(metric)
        return "test_" + metric.removeprefix("eval_"), cfg.search.mode
    for run in (r for r in runs if not r.failure):
        run.score = run.final.get("train_loss")
    return "train_loss", "min"


def trains_here(cfg: ExperimentConfig, info: RunInfo, address: str | None) -> bool:
    """Whether a refit trains in this process: a single-worker config on a local run, as its trials did (the
    others, or a refit asked to join a cluster, as a Ray Train job)."""
    return cfg.resources.in_process and not storage.is_uri(info.run_root) and address is None


def _new_folder(root: Path, name: str) -> Path:
    """A refit's own folder (two exports within a second get two)."""
    folder, k = root / name, 1
    while folder.exists():
        k += 1
        folder = root / f"{name}-{k}"
    return folder


def refit(chosen: Chosen, plan: RefitPlan, address: str | None = None) -> tuple[Refit | None, str]:
    """Train the chosen config on train + eval, `plan.seeds` times; the refit to export, or (None, why not) when
    every refit failed (export then exports the search's checkpoint)."""
    from raytune_llm.search.driver import connect, train_template

    info, cfg, trial, row = chosen.info, chosen.info.experiment, chosen.choice.trial, chosen.choice.row
    here = trains_here(cfg, info, address)
    if not here:
        connect(cfg, address)
    data_path, rows = write_refit_data(info)
    template = train_template(cfg, info).to_dict()
    # The eval rows are trained on now: a plateau on them says nothing, and the step count must be the one asked.
    stability = cfg.stability.model_dump(mode="json")
    stability["plateau"]["enabled"] = False
    stamp = time.strftime("%Y%m%d-%H%M%S")
    seeds = [chosen.train.seed + k for k in range(plan.seeds)]
    budget = "its full budget" if plan.steps == "full" else f"{row.get('step')} steps (the pick's best report)"
    print(f"refit: training trial {trial.trial_id}'s config on {rows} rows (train {info.sizes['train']} + eval "
          f"{info.sizes['eval']}), {budget}, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}",
          flush=True)
    runs = []
    for seed in seeds:
        train = refit_train(chosen.train, plan.steps, int(row.get("step") or 0), seed)
        spec = {**template, "data_path": data_path, "train": train.model_dump(mode="json"), "stability": stability,
                "started_at": time.time()}
        name = f"{stamp}-{trial.trial_id}-seed{seed}"
        run = (_train_here(cfg, spec, _new_folder(Path(info.run_root, REFIT_DIR), name)) if here
               else _train_one(cfg, info, spec, name))
        print(f"  seed {seed}: " + (f"failed: {run.failure}" if run.failure else
                                    f"{run.final.get('step')} steps, train loss {run.final.get('train_loss', 0):.4f}"),
              flush=True)
        runs.append(run)
    by, mode = _score(runs, chosen) if len(runs) > 1 else ("", cfg.search.mode)
    picked = median_run(runs, mode)
    if picked is None:
        return None, "; ".join(f"seed {r.seed}: {r.failure}" for r in runs)
    return Refit(runs, picked, rows, plan.steps, by, mode, str(row.get("checkpoint_path") or chosen.checkpoint)), ""
