"""`raytune-llm compress`: variants of an exported model (raytune_llm.compression), the ones that train (a
pruned model's recovery, a distilled student) trained by the same loop as every trial (in this process, the
stability guard watching), then every variant reloaded from its folder with plain transformers and measured side
by side against the original: scores on the run's eval and test rows, size, CPU latency and throughput."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from raytune_llm.compression.measure import load_variant, measure_variants
from raytune_llm.compression.methods import (
    SCHEMES,
    head_importance,
    heads_to_prune,
    prune_magnitude,
    quantise_int8,
    refusal,
    student_from_teacher,
    zero_heads,
)
from raytune_llm.compression.source import Source
from raytune_llm.core.errors import UserError
from raytune_llm.executors.env import HISTORY_FILE
from raytune_llm.runs.layout import COMPRESSION_DIR
from raytune_llm.schema import PeftMethod, TrainConfig

RESULT_FILE = "compression.json"
PREDICTIONS_FILE = "eval_predictions.json"


@dataclass
class Settings:
    head_ratio: float = 0.5
    magnitude_ratio: float = 0.5
    recovery: bool = True  # also a recovered variant of each pruning
    recovery_steps: int | None = None  # default: a quarter of an epoch
    student_layers: int | None = None  # default: half the teacher's
    student: str | None = None  # another student by name (its tokenizer must be the teacher's)
    temperature: float = 2.0
    alpha: float = 0.5
    distill_steps: int | None = None  # default: the pick's own budget
    timing_rows: int = 64
    rounds: int = 3
    threads: int = 1
    compile: bool = False
    scheme: str = "dynamic"  # int8: dynamic activations + int8 weights, or weight-only (compression.methods.SCHEMES)


def _train_settings(source: Source, steps: int) -> TrainConfig:
    """The pick's training settings for a compression run: full fine-tuning (the variant is a full model) at the
    pick's lr when it was full fine-tuning, else the library's full fine-tuning default; no re-initialisation."""
    from raytune_llm.recipes.library import family_of, library

    data = source.train.model_dump(mode="json")
    data["peft"] = {"method": "full"}
    data.update(max_steps=steps, reinit_top_layers=0, freeze_bottom_layers=0, unfreeze_every=None, l2sp=0.0)
    if source.method != PeftMethod.full:
        cfg = source.info.experiment
        recipe = library().default(PeftMethod.full, family_of(cfg.task.value))
        data["optimizer"]["lr"] = recipe.params.get("optimizer.lr", data["optimizer"]["lr"])
    return TrainConfig.model_validate(data)


def _train(source: Source, model_dir: Path, out: Path, steps: int,
           on_report: Callable[[dict[str, Any]], None] | None = None, **spec_fields: Any) -> dict[str, Any]:
    """Train the model in `model_dir` through the training loop in this process (the stability guard watching);
    save its last model to `out`. Returns the last report (a failed run: its stop_reason)."""
    from raytune_llm.executors import worker
    from raytune_llm.results.export import check_device
    from raytune_llm.search.driver import train_template
    from raytune_llm.search.refit import _LatestCheckpoint
    from raytune_llm.training.spec import RunSpec

    info, cfg = source.info, source.info.experiment
    work = out.parent / f".{out.name}-training"
    work.mkdir(parents=True, exist_ok=True)
    spec = {**train_template(cfg, info).to_dict(), "model_path": str(model_dir), "trained_head": True,
            "train": _train_settings(source, steps).model_dump(mode="json"), "started_at": time.time(),
            **spec_fields}
    session = _LatestCheckpoint(work, work / HISTORY_FILE, check_device(cfg.resources), on_report)
    worker.run(RunSpec(**spec), session)
    final = session.reports[-1] if session.reports else {}
    if session.checkpoints:
        shutil.copytree(session.checkpoints[-1] / "model", out)
    shutil.rmtree(work, ignore_errors=True)
    return final


def _rows(source: Source) -> int:
    return int(source.info.sizes.get("train", 0))


def _steps(source: Source, asked: int | None, fraction: float) -> int:
    from raytune_llm.training.spec import run_steps

    return asked or max(1, round(fraction * run_steps(source.train.model_copy(update={"max_steps": None,
                                                                                         "epochs": 1}), _rows(source))))


def _importance_batches(source: Source, rows: int = 512) -> list[dict[str, Any]]:
    import datasets
    from transformers import AutoTokenizer

    from raytune_llm.core.storage import node_copy
    from raytune_llm.tasks import get_task

    info = source.info
    tokenizer = AutoTokenizer.from_pretrained(node_copy(info.tokenizer_path, info.run_id))
    data = datasets.load_from_disk(node_copy(info.data_path, info.run_id))["eval"]
    data = data.select(range(min(rows, len(data))))
    collate = get_task(source.task).collator(tokenizer)
    feats = [dict(data[i]) for i in range(len(data))]
    size = source.train.eval_batch_size
    return [collate(feats[i:i + size]) for i in range(0, len(feats), size)]


def _save(model: Any, folder: Path, tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    model.save_pretrained(str(folder), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(folder))


def build_variants(source: Source, out: Path, methods: list[str], s: Settings) -> dict[str, dict[str, Any]]:
    """Write out/original and a folder per variant; what made each (method, settings, training)."""
    original = source.load_model()
    refuse(methods, source, original, s)
    _save(original, out / "original", tokenizer_dir(source))
    made: dict[str, dict[str, Any]] = {"original": {"method": "none", "from": str(source.export_dir)}}
    layers = int(original.config.num_hidden_layers)
    del original
    for method in methods:
        made.update(build_method(source, out, method, s, out / "original", layers))
    return made


def refuse(methods: list[str], source: Source, original: Any, s: Settings) -> None:
    """Every method that does not apply, and a student depth the teacher cannot give, in one line before any work."""
    problems = [why for m in methods if (why := refusal(m, source.task, original))]
    layers = int(original.config.num_hidden_layers)
    if "distill" in methods and s.student_layers is not None and not 1 <= s.student_layers < layers:
        problems.append(f"--student-layers {s.student_layers}: between 1 and {layers - 1} (the teacher has {layers})")
    if problems:
        raise UserError("; ".join(problems))


def tokenizer_dir(source: Source) -> Path:
    return source.export_dir / ("model" if (source.export_dir / "model").is_dir() else "adapter")


def build_method(source: Source, out: Path, method: str, s: Settings, original: Path, teacher_layers: int,
                 on_report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, dict[str, Any]]:
    """The variants of one method under `out` (a pruning: the pruned model, and with `s.recovery` the recovered
    one after it), from the saved original; what made each. `on_report`: each report of the training a variant
    takes (a search trial forwards them to Tune's scheduler)."""
    import torch

    from raytune_llm.tasks import get_task

    task, tokens = get_task(source.task), tokenizer_dir(source)
    made: dict[str, dict[str, Any]] = {}

    def trained(name: str, base: Path, steps: int, what: dict[str, Any], **fields: Any) -> None:
        print(f"compress: training {name} for {steps} steps", flush=True)
        final = _train(source, base, out / name, steps, on_report, **fields)
        what["training"] = {k: final.get(k) for k in ("step", "train_loss", "stop_reason", source.info.experiment
                                                      .search.metric) if k in final}
        if final.get("stop_reason") and not (out / name).is_dir():
            what["failed"] = final["stop_reason"]
        _save_tokenizer(out / name, tokens)
        made[name] = what

    print(f"compress: {method}", flush=True)
    if method == "int8":
        name = "int8" if s.scheme == "dynamic" else f"int8-{s.scheme}"
        quantise_int8(original, out / name, source.task, s.scheme)
        _save_tokenizer(out / name, tokens)
        made[name] = {"method": "int8", "scheme": s.scheme, "config": SCHEMES[s.scheme]}
    elif method in ("prune-heads", "prune-magnitude"):
        model = source.load_model()
        if method == "prune-heads":
            ratio = s.head_ratio
            pruned = heads_to_prune(head_importance(model, _importance_batches(source), task), ratio)
            zero_heads(model, pruned)
            what: dict[str, Any] = {"method": method, "ratio": ratio, "pruned_heads": pruned,
                                    "heads_pruned": sum(map(len, pruned.values()))}
        else:
            ratio = s.magnitude_ratio
            what = {"method": method, "ratio": ratio, "weights_zeroed": prune_magnitude(model, ratio)}
        name = f"{method}-{round(100 * ratio)}"
        _save(model, out / name, tokens)
        made[name] = what
        if s.recovery:
            steps = _steps(source, s.recovery_steps, 0.25)
            trained(f"{name}-recovered", out / name, steps, {**what, "recovery_steps": steps}, hold_zeros=True)
    elif method == "distill":
        if s.student:
            from raytune_llm.models.pretrained import load_pretrained

            student = load_pretrained(source.task, s.student, source.info.label_names)
            name, what = "distill-" + Path(s.student).name, {"student": s.student}
        else:
            layers = s.student_layers or max(1, teacher_layers // 2)

            student = student_from_teacher(load_variant(original, source.task), layers, source.task)
            name, what = f"distill-{layers}L", {"student_layers": layers, "init": "every other teacher layer"}
        _save(student, out / f".{name}-init", tokens)
        del student
        torch.manual_seed(source.train.seed)
        steps = _steps(source, s.distill_steps, source.train.epochs)
        trained(name, out / f".{name}-init", steps,
                {"method": "distill", **what, "temperature": s.temperature, "alpha": s.alpha, "steps": steps},
                teacher_path=str(original), distill_temperature=s.temperature, distill_alpha=s.alpha,
                trained_head=s.student is None)
        shutil.rmtree(out / f".{name}-init", ignore_errors=True)
    return made


def _save_tokenizer(folder: Path, tokenizer_dir: Path) -> None:
    if folder.is_dir() and not (folder / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(folder))


def compress(source: Source, out: Path, methods: list[str], s: Settings, force: bool = False) -> dict[str, Any]:
    """Build, measure and write every variant; the summary (also out/compression.json and
    RUN/compression/<stamp>.json)."""
    from raytune_llm.results.export import check_out

    check_out(out, force)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    made = build_variants(source, out, methods, s)
    return record(source, out, s, measure_variants(source, out, made, s, PREDICTIONS_FILE))


def record(source: Source, out: Path, s: Settings, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The measured variants written beside them (out/compression.json, one per variant folder) and into the run
    (RUN/compression/<stamp>.json, which the report reads); the summary."""
    metric = source.info.experiment.search.metric
    summary = {"source": str(source.export_dir), "run": source.info.run_root, "task": source.task,
               "objective": {"metric": metric, "mode": source.info.experiment.search.mode},
               "settings": asdict(s), "variants": rows, "out": str(out.resolve()), **extra}
    for r in rows:
        if (out / r["variant"]).is_dir():
            (out / r["variant"] / RESULT_FILE).write_text(json.dumps(r, indent=2, default=str))
    (out / RESULT_FILE).write_text(json.dumps(summary, indent=2, default=str))
    record = Path(source.info.run_root, COMPRESSION_DIR)
    record.mkdir(parents=True, exist_ok=True)
    (record / f"{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
