"""Export the best trial: a re-runnable best_config.yaml, the model (safetensors), tokenizer, labels, metrics.

The exported model is checked before export returns: its predictions on the eval split are compared
with the ones the trial made at that checkpoint, and the test split (if any) is scored. A refit's model (the
config retrained on train + eval, raytune_llm.search.refit) has no such trial: only its test split is scored.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raytune_llm.core.errors import UserError
from raytune_llm.core.stops import advice, failed_as
from raytune_llm.core.storage import fetch_checkpoint, is_uri, node_copy
from raytune_llm.results.choice import Choice, gain_over_default, pick
from raytune_llm.results.refit import Refit
from raytune_llm.results.trials import TrialRecord, load_trials, outcome_counts
from raytune_llm.runs.layout import RunInfo, read_info
from raytune_llm.schema import ExperimentConfig, PeftMethod, ResourcesConfig, TrainConfig, dump_config
from raytune_llm.schema.space import apply_params


def best_config(cfg: ExperimentConfig, train: TrainConfig) -> ExperimentConfig:
    """The experiment with every sampled value written in and nothing left to search."""
    data = cfg.model_dump(mode="json")
    data["train"] = train.model_dump(mode="json")
    data["search"].update(space={}, num_trials=1, scheduler={"name": "fifo"}, points_to_evaluate=[])
    data["run"]["name"] = f"{cfg.run.name}-best"
    return ExperimentConfig.model_validate(data)


def check_device(resources: ResourcesConfig) -> str:
    """The kind of device the trial trained on: a bf16 GPU trial's predictions are only reproduced there, under
    the same autocast. A CPU when the trial had a GPU but this machine has none (the check then says how far off
    the predictions are)."""
    import torch

    return "cuda" if resources.gpus_per_worker > 0 and torch.cuda.is_available() else "cpu"


def predict(model: Any, info: RunInfo, train: TrainConfig, split: str) -> tuple[dict[str, float], list[Any]]:
    """Metrics and predictions of `model` on a prepared split, in this process."""
    import datasets
    from transformers import AutoTokenizer

    from raytune_llm.tasks import get_task
    from raytune_llm.training.bare import BareSession
    from raytune_llm.training.evaluation import EvalContext, evaluate
    from raytune_llm.training.precision import autocast_for

    cfg = info.experiment
    session = BareSession(device=check_device(cfg.resources))
    model.to(session.device)
    dataset = datasets.load_from_disk(node_copy(info.data_path, info.run_id))[split]
    tokenizer = AutoTokenizer.from_pretrained(node_copy(info.tokenizer_path, info.run_id))
    task = get_task(cfg.task.value)
    ctx = EvalContext(task, info.label_names, tokenizer, task.collator(tokenizer), cfg.generation)
    return evaluate(model, dataset, ctx, train, session, autocast_for(train.precision, session.device))


def write_predictions(model: Any, info: RunInfo, train: TrainConfig, split: str, out: Path) -> dict[str, Any]:
    """An unlabelled split's predictions, one JSON line per row in the split's order: nothing to score them on."""
    from raytune_llm.tasks import get_task

    task = get_task(info.experiment.task.value)
    _, preds = predict(model, info, train, split)
    path = out / f"{split}_predictions.jsonl"
    path.write_text("".join(json.dumps({"index": i, "prediction": task.render_prediction(p, info.label_names)}) + "\n"
                            for i, p in enumerate(preds)))
    return {"file": path.name, "rows": len(preds)}


def base_model_reference(info: RunInfo) -> str:
    """How an exported adapter names its base model: the hub id or folder the user gave (a built-in's installed
    folder); a model converted from GGUF exists only in the run's prepared/ folder, so that folder."""
    from raytune_llm.sources.gguf import gguf_source
    from raytune_llm.sources.locate import locate_model

    cfg = info.experiment
    try:
        located = locate_model(cfg.model.name)
    except UserError:  # the folder the user trained from is not on this machine: name it as they did
        return cfg.model.name
    return info.model_path if gguf_source(located, cfg.model.gguf_file) else located


def load_model(info: RunInfo, method: PeftMethod, checkpoint: Path) -> Any:
    """The model of a checkpoint (base + adapter for PEFT methods), as the loop trained it."""
    from transformers import AutoTokenizer

    from raytune_llm.models.build import load_trained
    from raytune_llm.models.pretrained import hub_kwargs

    cfg = info.experiment
    hub = hub_kwargs(cfg.model.revision, cfg.model.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(node_copy(info.tokenizer_path, info.run_id))
    return load_trained(node_copy(info.model_path, info.run_id), checkpoint / "model", method, info.label_names,
                        cfg.task.value, tokenizer.pad_token_id, **hub)


def write_model(info: RunInfo, method: PeftMethod, checkpoint: Path, out: Path, merge: bool) -> Any:
    """Save the trained model under out/model (full or merged) and/or out/adapter; returns the primary one."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    cfg = info.experiment
    tokenizer = AutoTokenizer.from_pretrained(node_copy(info.tokenizer_path, info.run_id))
    model = load_model(info, method, checkpoint)
    targets = []
    if method != PeftMethod.full:
        # The adapter names the base model as the user gave it (a hub id, or their folder), not the run's cache.
        peft_config = model.peft_config["default"]
        peft_config.base_model_name_or_path = base_model_reference(info)
        peft_config.revision = cfg.model.revision
        model.save_pretrained(str(out / "adapter"), safe_serialization=True)
        targets.append(out / "adapter")
        if method == PeftMethod.lora and merge:
            model = model.merge_and_unload()
    if method == PeftMethod.full or (method == PeftMethod.lora and merge):
        model.save_pretrained(str(out / "model"), safe_serialization=True)
        targets.append(out / "model")
    for target in targets:
        tokenizer.save_pretrained(str(target))
    model.eval()
    return model


def _checkpoint_for(run_root: str, trial: TrialRecord, row: dict[str, Any]) -> Path:
    """The checkpoint of the chosen report, and no other: what `status` names and metrics.json describes is the
    checkpoint exported, or export refuses and says why."""
    path = row.get("checkpoint_path")
    if not path:
        raise UserError(f"trial {trial.trial_id} has no checkpoint for its report at step {row.get('step')}: it was "
                        "stopped before its first evaluation, which is when a trial saves one; re-run its config "
                        "with `raytune-llm train` (`raytune-llm report` prints the command)")
    if is_uri(run_root):
        return fetch_checkpoint(run_root, path)  # a failed fetch is said as it is, not replaced by another report
    if not Path(path).is_dir():
        raise UserError(f"the checkpoint of trial {trial.trial_id} at step {row.get('step')} is gone ({path}); trials "
                        "stopped early lose theirs unless run.prune_stopped is false; re-run it with "
                        "`raytune-llm train best_config.yaml --out DIR`")
    return Path(path)


@dataclass
class Chosen:
    """What export exports unless it refits: the pick, the params and training settings it ran with, and the
    checkpoint of its chosen report."""

    info: RunInfo
    trials: list[TrialRecord]
    choice: Choice
    params: dict[str, Any]
    train: TrainConfig
    checkpoint: Path
    by: str


def choose_export(run_dir: Path, by: str = "score", trial_id: str | None = None) -> Chosen:
    """The trial with the best score, or (by="robust") the best seed run of the most robust config, or the named
    trial's best report; with its checkpoint, or a UserError saying why there is none."""
    info = read_info(run_dir)
    cfg = info.experiment
    trials = load_trials(run_dir)
    choice, params = pick(run_dir, trials, cfg.search, by, trial_id)
    trial, row = choice.trial, choice.row
    if choice.fallback and not trial_id:
        print(f"warning: no healthy trial; exporting trial {trial.trial_id}, which {failed_as(trial.failure)} "
              f"({cfg.search.metric}={choice.score(cfg.search.metric):.4g} at step {row.get('step')}). To change "
              f"that: {advice(trial.failure)}")
    checkpoint = _checkpoint_for(info.run_root, trial, row)
    return Chosen(info, trials, choice, params, apply_params(cfg.train, params), checkpoint, by)


def check_out(out: Path, force: bool) -> None:
    """Refuse a non-empty --out before any work is done (a refit trains for minutes first)."""
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out} is not empty; choose a new folder or pass --force")


def write_export(chosen: Chosen, out: Path, merge: bool = False, force: bool = False, refit: Refit | None = None,
                 refit_failed: str = "") -> dict[str, Any]:
    """Write the export of `chosen`, or of the refit of its config when `refit` is given (`refit_failed`: why a
    refit that was asked for is not what was exported)."""
    from raytune_llm.tasks import get_task
    from raytune_llm.training.checkpoint import PREDICTIONS_FILE

    info, train, trial, row = chosen.info, chosen.train, chosen.choice.trial, chosen.choice.row
    cfg = info.experiment
    metric, mode = cfg.search.metric, cfg.search.mode
    checkpoint = refit.chosen.checkpoint if refit and refit.chosen.checkpoint else chosen.checkpoint
    # the search's pick against the default recipe (robust's winner and a named trial are not the search's pick)
    gain = gain_over_default(chosen.trials, cfg.search, chosen.choice) if chosen.by == "score" else None
    check_out(out, force)
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Write into a sibling temp folder and move it into place, so a failure leaves nothing half-written.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model = write_model(info, train.peft.method, checkpoint, staging, merge)
        (staging / "best_config.yaml").write_text(dump_config(best_config(cfg, train)))
        (staging / "labels.json").write_text(json.dumps(info.label_names, indent=2))
        metrics: dict[str, Any] = {
            "trial_id": trial.trial_id, "run_dir": info.run_root, "params": chosen.params, "chosen_by": chosen.by,
            "checkpoint": str(checkpoint),
            "peft_method": train.peft.method.value, "objective": {"metric": metric, "mode": mode},
            "trial": {k: v for k, v in row.items() if isinstance(v, (int, float, str)) and k != "config"},
            "outcomes": outcome_counts(chosen.trials),
            # the search trial's score against the default recipe's (a portfolio start's yardstick)
            "over_default_recipe": {**gain.as_dict(), "line": gain.line()} if gain else None,
            "fallback": {"stop_reason": trial.stop_reason, "failure": trial.failure,
                         "real_value": chosen.choice.score(metric), "advice": advice(trial.failure)}
            if chosen.choice.fallback else None,
            "refit": refit.summary() if refit else None,
        }
        if refit_failed:
            metrics["refit_failed"] = refit_failed
        if refit is None:  # the self-check: the exported model makes the trial's eval predictions again
            shutil.copy(checkpoint / PREDICTIONS_FILE, staging / "trial_eval_predictions.json")
            eval_metrics, preds = predict(model, info, train, "eval")
            trial_preds = json.loads((checkpoint / PREDICTIONS_FILE).read_text())
            same = get_task(cfg.task.value).same_prediction
            mismatches = sum(not same(a, b) for a, b in zip(preds, trial_preds)) + abs(len(preds) - len(trial_preds))
            metrics.update(exported_eval=eval_metrics, eval_prediction_mismatches=mismatches)
        else:
            metrics.update(exported_eval=None, eval_prediction_mismatches=None,
                           eval_self_check="not applicable: the refit trained on the eval split, so no trial's eval "
                           "predictions describe the exported model; `trial` keeps the search trial's scores")
        if (q := train.peft.quantization) is not None:
            metrics["quantized_base"] = {**q.model_dump(), "self_check": "the adapter on the full-precision base "
                                         "(as exported); the trial's own base was quantised"}
        if "test" in info.unlabelled_splits:
            metrics["test_predictions"] = write_predictions(model, info, train, "test", staging)
        elif "test" in info.sizes:
            test_metrics, _ = predict(model, info, train, "test")
            metrics["test"] = {k.replace("eval_", "test_"): v for k, v in test_metrics.items()}
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2))
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return metrics


def export(run_dir: Path, out: Path, merge: bool = False, force: bool = False, by: str = "score",
           trial_id: str | None = None) -> dict[str, Any]:
    """Export the pick's own checkpoint (no refit): `choose_export`, then `write_export`."""
    check_out(out, force)
    return write_export(choose_export(run_dir, by, trial_id), out, merge, force)
