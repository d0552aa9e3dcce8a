"""Prepare a run before any trial: the run folder, the tokenizer and the data tokenised once for all trials, the
model converted (GGUF) or checked (every PEFT variant the space can sample is built once on CPU)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from raytune_llm.core import storage
from raytune_llm.core.errors import UserError
from raytune_llm.models.build import preflight
from raytune_llm.models.pretrained import hub_kwargs
from raytune_llm.runs.layout import CONFIG_FILE, META_FILE, RunInfo, run_root_for, write_info
from raytune_llm.runs.tokenise import tokenise
from raytune_llm.schema import CLASSIFICATION_TASKS, PER_CLASS_PREFIXES, ExperimentConfig, TrainConfig, dump_config
from raytune_llm.schema.space import apply_params, sampled_peft_methods
from raytune_llm.sources.data import quiet_progress
from raytune_llm.sources.gguf import convert as convert_gguf
from raytune_llm.sources.gguf import gguf_source
from raytune_llm.sources.locate import locate_model
from raytune_llm.training import memory


def peft_variants(cfg: ExperimentConfig) -> list[TrainConfig]:
    """One training config per PEFT method the search can sample (with the widest choices of its settings)."""
    targets = cfg.search.space.get("peft.lora.targets")
    variants = []
    for m in (method.value for method in sampled_peft_methods(cfg)):
        for t in (targets.choices if targets is not None and hasattr(targets, "choices") else [None]):
            params = {"peft.method": m, **({"peft.lora.targets": t} if t is not None else {})}
            variants.append(apply_params(cfg.train, params))
    return variants


def _new_run_dir(cfg: ExperimentConfig, root: str) -> tuple[Path, bool]:
    """The local folder to prepare the run in: the run folder itself, or a staging folder for a URI; and whether
    this call created it (a failed `search` removes only what it created)."""
    taken = storage.exists(storage.join(root, META_FILE)) if storage.is_uri(root) else Path(root, META_FILE).exists()
    if taken:
        raise UserError(f"run.name: run {cfg.run.name!r} already exists at {root}; pick another name "
                        "(--set run.name=...) or remove that folder")
    if storage.is_uri(root):
        return Path(tempfile.mkdtemp(prefix=f"raytune-llm-{cfg.run.name}-")), True
    run_dir = Path(root)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"run.storage_path: cannot create {run_dir}: {exc.strerror}; choose a writable path") from None
    if not os.access(run_dir, os.W_OK):
        raise UserError(f"run.storage_path: {run_dir} is not writable; choose a writable path")
    return run_dir, created


def _publish(run_dir: Path, root: str, info: RunInfo) -> RunInfo:
    """For a run on a URI: upload the prepared inputs (and a local model folder, which other nodes lack) and
    point the run's paths at the uploaded copies, which each node caches once."""
    model_path = info.model_path
    if Path(model_path).is_dir():
        if not Path(model_path).is_relative_to(run_dir):  # a converted model is in prepared/ already
            storage.upload(Path(model_path), storage.join(root, "prepared", "model"))
        model_path = storage.join(root, "prepared", "model")
    info.model_path = model_path
    info.tokenizer_path = storage.join(root, "prepared", "tokenizer")
    info.data_path = storage.join(root, "prepared", "data")
    write_info(run_dir, info)
    storage.upload(run_dir, root)
    shutil.rmtree(run_dir / "prepared")  # the staged copy; trials read the uploaded one
    return info


def check_metric_labels(cfg: ExperimentConfig, label_names: list[str]) -> None:
    """The objectives that depend on the labels, which are known only once the data is read."""
    metric = cfg.search.metric
    if metric == "eval_f1" and cfg.task in CLASSIFICATION_TASKS and len(label_names) != 2:
        raise UserError(f"search.metric: eval_f1 is the positive class's F1 of a binary task; this one has "
                        f"{len(label_names)} labels: use eval_macro_f1 or eval_f1_<label> ({label_names[:3]}...)")
    if metric.startswith(PER_CLASS_PREFIXES) and cfg.task in CLASSIFICATION_TASKS:
        name = metric.split("_", 2)[2]
        if name not in label_names:
            raise UserError(f"search.metric: {metric!r} names no label; the labels are {label_names}")


def prepare_run(cfg: ExperimentConfig, address: str | None = None) -> tuple[Path, RunInfo]:
    """Create the run folder, save the tokenizer and the tokenised data once for all trials, and check that each
    PEFT variant fits a worker's memory (this machine's, unless the search runs on the cluster at `address`).
    Returns the local folder the run can be read from and the run's info (info.run_root: where the run lives)."""
    from transformers import AutoTokenizer

    root = run_root_for(cfg)
    run_dir, created = _new_run_dir(cfg, root)
    tokenizer_dir = run_dir / "prepared" / "tokenizer"
    try:
        model_path = locate_model(cfg.model.name)
        if source := gguf_source(model_path, cfg.model.gguf_file):
            model_path = convert_gguf(*source, run_dir / "prepared" / "model")
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_path, **hub_kwargs(cfg.model.revision,
                                                                                 cfg.model.trust_remote_code))
        except (OSError, ValueError) as exc:
            raise UserError(f"model.name: cannot load a tokenizer from {cfg.model.name!r}: "
                            f"{str(exc).splitlines()[0]}") from None
        if tokenizer.pad_token is None:  # decoder models ship without one; padding needs it
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.save_pretrained(str(tokenizer_dir))
        print(f"tokenising {cfg.data.source} with {cfg.model.name} (max_length={cfg.model.max_length}) ...",
              flush=True)
        started = time.monotonic()
        with quiet_progress():  # one line here instead of two progress bars per split
            prepared = tokenise(cfg.data, cfg.model, str(tokenizer_dir), run_dir / "prepared" / "data",
                                cfg.train.seed, cfg.task.value)
        rows = ", ".join(f"{split} {n}" for split, n in prepared.sizes.items())
        print(f"tokenised and saved ({rows} rows) in {time.monotonic() - started:.1f} s")
        check_metric_labels(cfg, prepared.label_names)
        variants = peft_variants(cfg)
        models = preflight(model_path, prepared.label_names, variants, str(tokenizer_dir), cfg.task.value,
                           **hub_kwargs(cfg.model.revision, cfg.model.trust_remote_code))
        for line in memory.plan(cfg, variants, models, local=address is None):
            print(line)
    except BaseException:
        # Nothing half-written is left behind, and nothing of the user's is touched: a folder that was there
        # before loses only what this call wrote into it.
        shutil.rmtree(run_dir if created else run_dir / "prepared", ignore_errors=True)
        raise
    info = RunInfo(
        config=cfg.model_dump(mode="json"), model_path=model_path, tokenizer_path=str(tokenizer_dir),
        data_path=str(prepared.path), label_names=prepared.label_names, sizes=prepared.sizes,
        chance_value=prepared.chance_value, chance_metric=prepared.chance_metric,
        chance_loss=prepared.chance_loss, unlabelled_splits=prepared.unlabelled, run_id=uuid.uuid4().hex,
        run_root=root,
    )
    (run_dir / CONFIG_FILE).write_text(dump_config(cfg))
    write_info(run_dir, info)
    if storage.is_uri(root):
        try:
            info = _publish(run_dir, root, info)
        except OSError as exc:
            raise UserError(f"run.storage_path: cannot upload the run to {root}: {exc}") from None
    return run_dir, info
