"""The PEFT methods a trial can train with (`train.peft.method`), one registered class each: the peft config it
wraps the model with (none for full fine-tuning), and its own checks of an experiment (`problems`).

Adding one: a class here registered under its `schema.PeftMethod` value, with its settings in `schema.train`.
Nothing heavy is imported here: `validate` asks each method the search can sample to check itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from raytune_llm.core.errors import Problem, UserError
from raytune_llm.core.registry import Registry
from raytune_llm.schema import PeftMethod

if TYPE_CHECKING:
    from raytune_llm.schema import ExperimentConfig, PeftConfig


def _known(name: str, cls: Any) -> str | None:
    return None if name in {m.value for m in PeftMethod} else f"not a value of schema.PeftMethod {[*PeftMethod]}"


methods: Registry[type[Method]] = Registry("PEFT method", needs=("problems", "peft_config"), check=_known)

# LoRA target presets; `qv` defers to peft's own per-architecture default (query and value).
LORA_ATTENTION = {
    "bert": ["query", "key", "value", "attention.output.dense"],
    "roberta": ["query", "key", "value", "attention.output.dense"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
}


class Method:
    """A way of fine-tuning: which weights train, and the peft config that says so."""

    def peft_config(self, cfg: PeftConfig, model_type: str, tokenizer_path: str, task_type: str) -> Any:
        """The peft config to wrap the model with (settings, model type, tokenizer path, peft task type); None:
        the model trains as it is."""
        raise NotImplementedError

    def problems(self, cfg: ExperimentConfig) -> list[Problem]:
        """What this method cannot be combined with in `cfg` (checked when the search can sample it)."""
        return []


def method(name: str) -> Method:
    return methods.get(name)()


@methods.register(PeftMethod.full.value)
class Full(Method):
    def peft_config(self, cfg: PeftConfig, model_type: str, tokenizer_path: str, task_type: str) -> Any:
        return None

    def problems(self, cfg: ExperimentConfig) -> list[Problem]:
        if cfg.train.peft.quantization is None:
            return []
        where = "search.space.peft.method" if "peft.method" in cfg.search.space else "train.peft.method"
        return [Problem(where, "full fine-tuning trains the weights train.peft.quantization freezes in "
                        f"{cfg.train.peft.quantization.bits} bits; use PEFT methods only, or remove the quantization")]


def lora_targets(targets: str | list[str], model_type: str) -> Any:
    if isinstance(targets, list):
        return targets
    if targets == "qv":
        return None
    if targets == "all-linear":
        return "all-linear"
    if targets == "attention":
        if model_type not in LORA_ATTENTION:
            raise UserError(
                f"train.peft.lora.targets: no `attention` preset for model type {model_type!r}; "
                "list the module names instead"
            )
        return LORA_ATTENTION[model_type]
    raise UserError(f"train.peft.lora.targets: unknown preset {targets!r}; use qv, attention, all-linear or a list")


@methods.register(PeftMethod.lora.value)
class Lora(Method):
    def peft_config(self, cfg: PeftConfig, model_type: str, tokenizer_path: str, task_type: str) -> Any:
        from peft import LoraConfig, TaskType

        lora = cfg.lora
        return LoraConfig(
            task_type=TaskType(task_type),
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora_targets(lora.targets, model_type),
        )


@methods.register(PeftMethod.prompt_tuning.value)
class PromptTuning(Method):
    def peft_config(self, cfg: PeftConfig, model_type: str, tokenizer_path: str, task_type: str) -> Any:
        from peft import PromptTuningConfig, PromptTuningInit, TaskType

        pt = cfg.prompt_tuning
        text = pt.init == "text"
        return PromptTuningConfig(
            task_type=TaskType(task_type),
            num_virtual_tokens=pt.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT if text else PromptTuningInit.RANDOM,
            prompt_tuning_init_text=pt.init_text if text else None,
            tokenizer_name_or_path=tokenizer_path if text else None,
        )


@methods.register(PeftMethod.prefix_tuning.value)
class PrefixTuning(Method):
    def peft_config(self, cfg: PeftConfig, model_type: str, tokenizer_path: str, task_type: str) -> Any:
        from peft import PrefixTuningConfig, TaskType

        pt = cfg.prefix_tuning
        return PrefixTuningConfig(
            task_type=TaskType(task_type), num_virtual_tokens=pt.num_virtual_tokens, prefix_projection=pt.projection
        )


@contextlib.contextmanager
def peft_reads_deprecated_alias() -> Iterator[None]:
    """Around PEFT's model wrapping and loading: without the FutureWarning they trigger by reading transformers'
    deprecated `is_gradient_checkpointing` alias, a library's internal matter that no user can act on."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def wrap_peft(model: Any, peft_config: Any) -> Any:
    """PEFT's `get_peft_model` (see peft_reads_deprecated_alias)."""
    from peft import get_peft_model

    with peft_reads_deprecated_alias():
        return get_peft_model(model, peft_config)
