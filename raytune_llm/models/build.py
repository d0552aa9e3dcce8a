"""Build the model a trial trains (pretrained weights, dropout overrides, the PEFT wrapper), check each variant a
search can sample before it starts, save what trains and load it back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from raytune_llm.core import process_cache
from raytune_llm.core.errors import UserError
from raytune_llm.models.peft_methods import method as peft_method
from raytune_llm.models.peft_methods import peft_reads_deprecated_alias, wrap_peft
from raytune_llm.models.pretrained import load_pretrained
from raytune_llm.models.quantization import is_quantized, quantized
from raytune_llm.schema import PeftMethod, TrainConfig

if TYPE_CHECKING:
    import torch

# Config attribute names that hold each kind of dropout, across common architectures.
DROPOUT_ATTRS = {
    "hidden": ("hidden_dropout_prob", "hidden_dropout", "dropout", "resid_pdrop"),
    "attention": ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop"),
    "classifier": ("classifier_dropout", "seq_classif_dropout", "summary_first_dropout"),
}

def dropout_overrides(model_path: str, train: TrainConfig, **hub: Any) -> dict[str, float]:
    """Config kwargs for the dropout values the user set, under the names this architecture uses."""
    from transformers import AutoConfig

    wanted = {k: v for k, v in train.dropout.model_dump().items() if v is not None}
    if not wanted:
        return {}
    config = AutoConfig.from_pretrained(model_path, **hub)
    kwargs = {}
    for kind, value in wanted.items():
        names = [a for a in DROPOUT_ATTRS[kind] if hasattr(config, a)]
        if not names and kind != "classifier":
            raise UserError(f"train.dropout.{kind}: model type {config.model_type!r} has no such dropout setting")
        kwargs.update({a: value for a in names or ("classifier_dropout",)})
    return kwargs


def build_model(model_path: str, label_names: list[str], train: TrainConfig, tokenizer_path: str,
                task: str = "sequence_classification", pad_token_id: int | None = None,
                frozen_dtype: torch.dtype | None = None,
                **hub: Any) -> torch.nn.Module:
    """The task's pretrained model with dropout overrides and the configured PEFT method applied.

    Trainable parameters are always fp32 (bf16/fp16 happen only inside autocast): AdamW updates on half-precision
    weights lose most small updates. With `frozen_dtype` (PEFT under bf16 or fp16 autocast) the frozen base is held
    in that dtype, which halves its memory and changes nothing it computes under that autocast."""
    import torch

    from raytune_llm.tasks import get_task

    method = train.peft.method
    dtype = frozen_dtype if frozen_dtype is not None and method != PeftMethod.full else torch.float32
    kwargs = {**dropout_overrides(model_path, train, **hub), **hub}
    if train.peft.quantization is not None and method != PeftMethod.full:
        model = quantized(task, model_path, label_names, train, **kwargs)  # not cached: it lives on the GPU
    else:
        key = (task, model_path, tuple(label_names), str(dtype), tuple(sorted(kwargs.items())))
        model = process_cache.pretrained(key, lambda: load_pretrained(task, model_path, label_names, dtype, **kwargs))
    if model.config.pad_token_id is None:
        if pad_token_id is None:
            from transformers import AutoTokenizer

            pad_token_id = AutoTokenizer.from_pretrained(tokenizer_path).pad_token_id
        model.config.pad_token_id = pad_token_id
    if train.gradient_checkpointing and not is_quantized(model):  # (a quantised model: prepared above)
        if not model.supports_gradient_checkpointing:
            raise UserError(f"train.gradient_checkpointing: {type(model).__name__} does not support it; set it to "
                            "false (or micro_batch_size to save activation memory instead)")
        checkpointing(model, True)
    peft_config = peft_method(method.value).peft_config(train.peft, model.config.model_type, tokenizer_path,
                                                        get_task(task).peft_task_type)
    if peft_config is not None:
        try:
            model = wrap_peft(model, peft_config)
        except (ValueError, TypeError, KeyError) as exc:
            raise UserError(f"train.peft.method: {method.value} does not fit this model: {exc}") from None
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    return model


def checkpointing(model: Any, on: bool) -> None:
    """Activation checkpointing on or off, non-reentrant (it works with PEFT's frozen inputs without
    enable_input_require_grads, and under DDP). transformers 5.x renamed the methods; older 5.x has only the old."""
    if hasattr(model, "activation_checkpointing_enable"):
        if on:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


def weight_dtypes(model: torch.nn.Module) -> dict[str, str]:
    """The dtypes of the trainable and the frozen parameters, for the trial's report."""
    seen: dict[str, set[str]] = {"trainable": set(), "frozen": set()}
    for p in model.parameters():
        seen["trainable" if p.requires_grad else "frozen"].add(str(p.dtype).removeprefix("torch."))
    return {f"{k}_dtype": ",".join(sorted(v)) or "-" for k, v in seen.items()}


def trainable_params(model: torch.nn.Module) -> int:
    """Weights the optimizer updates (a search objective to minimise: what a PEFT method saves)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def preflight(model_path: str, label_names: list[str], trains: list[TrainConfig], tokenizer_path: str,
              task: str = "sequence_classification", **hub: Any) -> list[torch.nn.Module]:
    """Build each PEFT variant the search can sample on the meta device (no weights, milliseconds), so a method
    that does not fit the model is an error before any trial starts, not a failed trial later. Returns the
    variants (for the memory estimate), in the order of `trains`."""
    import torch
    from transformers import AutoConfig

    from raytune_llm.tasks import get_task

    t = get_task(task)
    try:
        config = AutoConfig.from_pretrained(model_path, **t.model_kwargs(label_names), **hub)
    except (OSError, ValueError) as exc:
        raise UserError(f"model.name: cannot load {model_path!r}: {str(exc).splitlines()[0]}") from None
    models = []
    for train in trains:
        with torch.device("meta"):
            model = t.auto_class().from_config(config, trust_remote_code=hub.get("trust_remote_code", False))
        peft_config = peft_method(train.peft.method.value).peft_config(train.peft, config.model_type,
                                                                       tokenizer_path, t.peft_task_type)
        if peft_config is not None:
            try:
                model = wrap_peft(model, peft_config)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise UserError(f"train.peft: {train.peft.method.value} does not fit {config.model_type!r} models: "
                                f"{str(exc).splitlines()[0]}") from None
        models.append(model)
    return models


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)  # DDP keeps the real model in .module


def save_trainable(model: torch.nn.Module, out: Path, state_dict: dict | None = None) -> None:
    """Full weights, or only the adapter for PEFT models; safetensors either way. `state_dict`: the gathered
    state of a sharded model (its own parameters are shards)."""
    unwrap(model).save_pretrained(str(out), safe_serialization=True, state_dict=state_dict)


def load_trained(
    model_path: str, checkpoint_model_dir: Path, peft_method: PeftMethod, label_names: list[str],
    task: str = "sequence_classification", pad_token_id: int | None = None, **hub: Any,
) -> torch.nn.Module:
    """The trained model from a trial checkpoint (base weights + adapter for PEFT methods), in fp32, with the pad
    token the trial used (decoder models ship without one; a batch of several rows needs it)."""
    import torch

    from raytune_llm.tasks import get_task

    if peft_method == PeftMethod.full:
        model = get_task(task).auto_class().from_pretrained(str(checkpoint_model_dir), dtype=torch.float32,
                                                            trust_remote_code=hub.get("trust_remote_code", False))
    else:
        from peft import PeftModel

        base = load_pretrained(task, model_path, label_names, **hub)
        with peft_reads_deprecated_alias():
            model = PeftModel.from_pretrained(base, str(checkpoint_model_dir))
    config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    if config.pad_token_id is None and pad_token_id is not None:
        config.pad_token_id = pad_token_id
    return model
